"""One YAML file per area (juki.yaml … data.yaml, org.yaml, phy.yaml); a package only so the files ship."""
