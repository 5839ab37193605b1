"""`python -m simulator.services serve|load|chaos`: the same commands as `jukisim serve` and `jukisim load`, and the chaos run.

Used to start services in a separate process (the load command does); it must never hold logic of its own.
"""

from simulator.services.cli import app

app()
