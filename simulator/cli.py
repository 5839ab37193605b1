"""The `jukisim` command: one entry point, sub-commands mounted from the packages that own them.

This module must never hold logic of its own beyond parsing arguments and printing; each command calls
into the package that does the work.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="jukisim",
    help="住基・番号制度 情報連携テストベッド / testbed of the 住民基本台帳 information-linkage pipeline",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """jukisim: 特定個人情報保護評価書の技術的対策を検証するテストベッド。"""


def main() -> None:
    app()
