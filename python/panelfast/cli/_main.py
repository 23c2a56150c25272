"""The ``panelfast`` command."""

from __future__ import annotations

import click

from panelfast import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="panelfast")
def main() -> None:
    """panelfast: a fast, durable energy gateway."""


if __name__ == "__main__":
    main()
