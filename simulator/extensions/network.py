"""Networks, terminals and the counter of every municipality in the world (NET, TERM, MADO), from
scenarios/data/network.yaml: ``<m>.network``, ``<m>.terminals`` and ``<m>.counter``.

It only adds components; it never changes a part the spine or another extension built.
"""

from simulator.components.network import install

__all__ = ["install"]
