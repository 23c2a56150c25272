"""``panelfast service install``: the systemd unit for this gateway."""

from __future__ import annotations

import pwd
from pathlib import Path

import click

from panelfast.cli._daemon import config_option, load
from panelfast.cli._main import main

#: Where systemd reads the units an administrator installs (systemd.unit(5)).
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")


@main.group()
def service() -> None:
    """Run the gateway as a systemd service."""


@service.command()
@config_option
@click.option(
    "--user",
    default="panelfast",
    show_default=True,
    help="the dedicated user the service runs as (it must own the claim key)",
)
@click.option("--group", help="the service's group  [default: the user's name]")
@click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_UNIT_DIR,
    show_default=True,
    help="where systemd reads unit files",
)
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    help="a staging root the unit folder is placed under (building a package)",
)
@click.option("--force", is_flag=True, help="replace an existing unit file")
def install(
    config_path: Path,
    user: str,
    group: str | None,
    unit_dir: Path,
    prefix: Path | None,
    force: bool,
) -> None:
    """Write the unit file that runs this configuration as a service.

    The unit runs `panelfast run --config CONFIG` with this Python, as USER,
    Type=notify with a watchdog, restarted on failure, and hardened (a
    read-only system but for its state directory and storage folder).
    """
    from panelfast.systemd import UNIT_NAME, install_unit, render_unit  # only this command

    settings = load(config_path)  # a unit for a configuration that does not load: no
    if not unit_dir.is_absolute():
        raise click.BadParameter(f"{unit_dir} is not an absolute path", param_hint="--unit-dir")
    text = render_unit(settings, config_path, user=user, group=group)
    try:
        target = install_unit(text, unit_dir=unit_dir, prefix=prefix, force=force)
    except FileExistsError as exc:
        raise click.ClickException(
            f"{exc.args[0]} exists: run with --force to replace it "
            f"(or `systemctl edit {UNIT_NAME}` to change it)"
        ) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {exc.filename or unit_dir}: {exc.strerror} (run as root?)"
        ) from None
    click.echo(f"wrote {target}")
    steps = []
    if not _user_exists(user):
        steps.append(
            f"useradd --system --home-dir /var/lib/panelfast --shell /usr/sbin/nologin {user}"
        )
    key = settings.identity.claim_key_file.resolve()
    steps += [
        f"chown {user} {key} && chmod 600 {key}   # the service reads the claim key",
        "systemctl daemon-reload",
        f"systemctl enable --now {UNIT_NAME}",
        f"systemctl status {UNIT_NAME}   # or: journalctl -u {UNIT_NAME} -f",
    ]
    click.echo("next, as root:\n" + "\n".join(f"  {s}" for s in steps))


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
