"""Municipality profiles: one YAML file per seed municipality (loaded by simulator.profiles)."""
