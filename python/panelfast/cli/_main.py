"""The ``panelfast`` command.

Each command lives in a ``_<topic>.py`` module that registers it on
:func:`main`; the module is imported only when its command runs (or help
lists them), so ``panelfast status`` pays for the control socket's few
imports, not for the gateway's.
"""

from __future__ import annotations

import importlib

import click

from panelfast import __version__

#: Command name → the module that defines it.
COMMANDS = {
    "run": "_gateway",
    "backlog": "_gateway",
    "reload": "_gateway",
    "connect": "_cloud",
    "disconnect": "_cloud",
    "status": "_cloud",
    "identification": "_cloud",
    "firewall": "_cloud",
    "devices": "_cloud",
    "audit": "_cloud",
    "topology": "_topology",
    "remote-config": "_remote_config",
    "set": "_remote_config",
    "outputs": "_outputs",
    "demo": "_demo",
    "modbus": "_modbus",
    "simulate": "_simulator",
    "refcloud": "_refcloud",
    "email": "_email",
    "publication": "_publication",
    "service": "_service",
    "doctor": "_doctor",
    "web": "_web",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"panelfast.cli.{COMMANDS[cmd_name]}")
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="panelfast")
def main() -> None:
    """panelfast: a fast, durable energy gateway."""


if __name__ == "__main__":
    main()
