"""``panelfast doctor``: check what this site gives the gateway, each with its fix."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from panelfast.cli._config import config_option, load_config
from panelfast.cli._main import main


@main.command()
@config_option
@click.option(
    "--timeout",
    "timeout_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="seconds each network check may wait",
)
def doctor(config_path: Path, timeout_s: float) -> None:
    """Check the site: network to the cloud, clock, claim key, storage, devices.

    Prints each check with ✓ or ✗ and the fix; exits 0 only when all pass.
    """
    from panelfast.doctor import run_checks  # the device checks load the acquisition engine

    # The claim key file and the models are checks of their own, each with its fix.
    settings = load_config(config_path, whole=False)
    failed = 0
    for check in run_checks(settings, timeout_s=timeout_s):
        click.echo(check.text())
        failed += check.ok is False
    click.echo(f"{failed} check(s) failed" if failed else "all checks passed")
    sys.exit(1 if failed else 0)
