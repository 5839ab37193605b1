"""Templates of the training page (package data, read with importlib.resources).

Kept as a package so the template installs with the code; it must never reference anything outside the page.
"""
