"""Installs each municipality's data lifecycle batch ("<m>.lifecycle": backups, UPS, retention; DATA-001..005).

The component and its install live in simulator.components.lifecycle; this module only exposes ``install`` to
simulator.world. It must never change what another module built.
"""

from simulator.components.lifecycle import install

__all__ = ["install"]
