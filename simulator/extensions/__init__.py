"""Parts of a world beside the linkage spine, one module each, installed by simulator.world in name order.

Each module exposes ``install(world)``: it adds its components, stores, staff and links through the World's
public helpers (``add``, ``security``, ``store``, ``key``, ``add_staff``, ``directory.connect``). A module here must never
change what another module or the spine built; it only adds.
"""
