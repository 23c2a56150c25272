"""The ``panelfast`` command: one module per command group, loaded when used.

``_main.COMMANDS`` names the module of each command; the module registers
its commands on :func:`main` when imported.
"""

from panelfast.cli._main import main

__all__ = ["main"]
