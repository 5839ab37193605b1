"""World extension: つくば's 住民税システム and 倉敷's 介護保険システム in depth (GYOMU-001..013).

Only re-exports the installer of simulator.components.business_depth; it must never hold logic of its own.
"""

from simulator.components.business_depth import install

__all__ = ["install"]
