"""Media and export control, contractor management and the file server shared with contractors (MEDIA, ITAKU).

Installs, for each municipality of the world, ``<m>.media_control``, ``<m>.contractors`` and, where the profile
claims one, ``<m>.shared_file_server`` (simulator.components.contractors.install). It must never change what the
spine or another extension built; it only adds.
"""

from simulator.components.contractors import install

__all__ = ["install"]
