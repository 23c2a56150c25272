"""The gateway's configuration file, as every command loads it.

One option (``--config FILE``), one check (:func:`panelfast.config.load_settings`:
the file, its claim key file and its device models), one way to say what is
wrong: each problem on a line of its own, ``Error: <key>: <problem>``, and exit
status 2, the status of a command given something it cannot use.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    # Loaded when a command needs the whole configuration: a command that only
    # talks to the running daemon finds its socket without pydantic.
    from panelfast.config import Settings
    from panelfast.exceptions import ConfigError

__all__ = ["ConfigFileError", "config_option", "load_config"]

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the gateway's configuration file (TOML)",
)


class ConfigFileError(click.ClickException):
    """A configuration the command cannot use."""

    exit_code = 2

    def __init__(self, error: ConfigError) -> None:
        # A problem of the file as a whole names the file; any other names its key.
        self.lines = [
            f"{error.source}: {issue.message}" if issue.key == "(file)" else str(issue)
            for issue in error.issues
        ]
        super().__init__("\n".join(self.lines))

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.lines:
            click.echo(f"Error: {line}", file=file, err=file is None)


def load_config(path: Path, *, whole: bool = True) -> Settings:
    """The settings of the file at ``path``, checked whole; :class:`ConfigFileError` if not."""
    from panelfast.config import load_settings
    from panelfast.exceptions import ConfigError

    try:
        return load_settings(path, whole=whole)
    except ConfigError as exc:
        raise ConfigFileError(exc) from None
