"""``panelfast refcloud``: run the reference cloud and operate it.

``serve`` runs it in the foreground over a state folder; every other command
talks to the running one through the same folder (``server.json``, the CA, the
operator token), so they work from any shell on the machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from panelfast.cli._main import main
from panelfast.exceptions import RefCloudError

if TYPE_CHECKING:
    from panelfast.refcloud.client import OperatorClient

_F = TypeVar("_F", bound=Callable[..., Any])

_SECTIONS = (
    "topology",
    "config",
    "reports",
    "data",
    "alarm_events",
    "commands",
    "output_states",
    "uploads",
    "disconnects",
)


def _state_option(func: _F) -> _F:
    option = click.option(
        "--state",
        "state",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="PANELFAST_REFCLOUD_STATE",
        required=True,
        help="The cloud's state folder (or $PANELFAST_REFCLOUD_STATE).",
    )
    return option(func)


def _load_refcloud() -> None:
    """Import the reference cloud, or say which extra to install (never a traceback)."""
    try:
        import panelfast.refcloud  # noqa: F401
    except ModuleNotFoundError as err:
        raise click.ClickException(str(err)) from err


def _operator(state: Path) -> OperatorClient:
    # Imported here: the web stack is heavy and other commands should start fast.
    _load_refcloud()
    from panelfast.refcloud.client import OperatorClient

    try:
        return OperatorClient(state)
    except RefCloudError as err:
        raise click.ClickException(str(err)) from err


def _echo(value: object) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise click.ClickException(f"cannot read JSON from {path}: {err}") from err


def _run(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except RefCloudError as err:
        raise click.ClickException(str(err)) from err


@main.group()
def refcloud() -> None:
    """The reference cloud (cloud protocol v1) and its operator commands."""


@refcloud.command()
@_state_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, help="Port (0: any free port).")
@click.option("--separate-ports", is_flag=True, help="Bootstrap, hub and upload on 3 ports.")
@click.option("--hub-host", help="Host name of the hub URL bootstrap returns.")
@click.option("--upload-host", help="Host name of the upload URL bootstrap returns.")
@click.option("--hub-url", help="The exact hub URL bootstrap returns.")
@click.option("--upload-url", help="The exact upload URL bootstrap returns.")
@click.option("--token-lifetime", default=24 * 3600, show_default=True, help="Seconds.")
@click.option("--ntp-server", default="127.0.0.1:123", show_default=True)
@click.option("--cert-host", multiple=True, help="Another name for the server certificate.")
def serve(
    state: Path,
    host: str,
    port: int,
    separate_ports: bool,
    hub_host: str | None,
    upload_host: str | None,
    hub_url: str | None,
    upload_url: str | None,
    token_lifetime: int,
    ntp_server: str,
    cert_host: tuple[str, ...],
) -> None:
    """Serve the reference cloud over HTTPS until interrupted."""
    _load_refcloud()
    from panelfast.refcloud.server import RefCloud
    from panelfast.refcloud.state import Settings

    settings = Settings(
        token_lifetime_s=token_lifetime,
        ntp_server=ntp_server,
        hub_url=hub_url,
        upload_url=upload_url,
        extra_hosts=cert_host,
    )
    cloud = RefCloud(
        state,
        host=host,
        port=port,
        separate_ports=separate_ports,
        hub_host=hub_host,
        upload_host=upload_host,
        settings=settings,
    )
    try:
        cloud.serve_forever()
    except RefCloudError as err:
        raise click.ClickException(str(err)) from err


@refcloud.command()
@_state_option
@click.argument("serial")
@click.option("--claim-key", help="The claim key (64 hex digits); made at random if absent.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the claim key (mode 0600); default <state>/claim_keys/<serial>.key.",
)
def enrol(state: Path, serial: str, claim_key: str | None, out: Path | None) -> None:
    """Enrol SERIAL; writes its claim key to a file readable by you only."""
    _load_refcloud()
    from panelfast.refcloud.tls import write_secret

    with _operator(state) as operator:
        key = _run(lambda: operator.enrol(serial, claim_key))
    path = out or state / "claim_keys" / f"{serial}.key"
    write_secret(path, key.encode())
    click.echo(f"enrolled {serial}; claim key written to {path}")


@refcloud.command("de-enrol")
@_state_option
@click.argument("serial")
def de_enrol(state: Path, serial: str) -> None:
    """Remove SERIAL from the enrolment list (its tokens stop working)."""
    with _operator(state) as operator:
        _run(lambda: operator.de_enrol(serial))
    click.echo(f"de-enrolled {serial}")


@refcloud.command()
@_state_option
def enrolments(state: Path) -> None:
    """List every serial enrolled (never their claim keys)."""
    with _operator(state) as operator:
        _echo(_run(operator.enrolments))


@refcloud.command("expire-tokens")
@_state_option
@click.argument("serial", required=False)
def expire_tokens(state: Path, serial: str | None) -> None:
    """Make the tokens of SERIAL (or of every gateway) expired now."""
    with _operator(state) as operator:
        _echo({"expired": _run(lambda: operator.expire_tokens(serial))})


@refcloud.group()
def config() -> None:
    """Publish remote configurations."""


@config.command("set")
@_state_option
@click.argument("serial")
@click.argument("document", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--raw", is_flag=True, help="Serve the document exactly as given.")
@click.option("--check", is_flag=True, help="Refuse it if a gateway would reject it.")
def config_set(state: Path, serial: str, document: Path, raw: bool, check: bool) -> None:
    """Publish DOCUMENT (a JSON file) as SERIAL's next configuration."""
    body = _read_json(document)
    with _operator(state) as operator:
        _echo(_run(lambda: operator.set_config(serial, body, raw=raw, check=check)))


@config.command("generate")
@_state_option
@click.argument("serial")
@click.option("--period", "period_s", type=click.IntRange(min=1), required=True, help="Seconds.")
@click.option("--publisher-period", "publisher_period_s", type=click.IntRange(min=1))
@click.option("--device", "devices", multiple=True, help="Only this device (repeatable).")
@click.option(
    "--alarms",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON file holding a list of alarms.",
)
def config_generate(
    state: Path,
    serial: str,
    period_s: int,
    publisher_period_s: int | None,
    devices: tuple[str, ...],
    alarms: Path | None,
) -> None:
    """Publish a configuration sampling the published topology every PERIOD seconds."""
    alarm_list = _read_json(alarms) if alarms is not None else []
    if not isinstance(alarm_list, list):
        raise click.ClickException("--alarms must hold a JSON list")
    with _operator(state) as operator:
        _echo(
            _run(
                lambda: operator.generate_config(
                    serial,
                    period_s=period_s,
                    publisher_period_s=publisher_period_s,
                    devices=list(devices) or None,
                    alarms=alarm_list,
                )
            )
        )


@refcloud.group()
def command() -> None:
    """Queue commands for a gateway (spec §9)."""


def _queue(state: Path, serial: str, body: dict[str, Any]) -> None:
    with _operator(state) as operator:
        _echo(_run(lambda: operator.queue_command(serial, body)))


@command.command("output")
@_state_option
@click.argument("serial")
@click.argument("output")
@click.argument("action", type=click.Choice(["on", "off", "toggle"]))
@click.option("--expires-in", type=click.IntRange(min=0), help="Seconds from now.")
def command_output(
    state: Path, serial: str, output: str, action: str, expires_in: int | None
) -> None:
    """Switch OUTPUT (<device id>/<output id>) on, off or toggle."""
    body: dict[str, Any] = {"type": "output", "output": output, "action": action}
    if expires_in is not None:
        body["expires_at"] = int(time.time()) + expires_in
    _queue(state, serial, body)


@command.command("schedule")
@_state_option
@click.argument("serial")
@click.argument("schedule", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def command_schedule(state: Path, serial: str, schedule: Path) -> None:
    """Store the schedule of SCHEDULE (a JSON file) on the gateway."""
    _queue(state, serial, {"type": "schedule", "schedule": _read_json(schedule)})


@command.command("schedule-delete")
@_state_option
@click.argument("serial")
@click.argument("schedule_id")
def command_schedule_delete(state: Path, serial: str, schedule_id: str) -> None:
    """Delete schedule SCHEDULE_ID on the gateway."""
    _queue(state, serial, {"type": "schedule_delete", "schedule_id": schedule_id})


@command.command("upload-logs")
@_state_option
@click.argument("serial")
def command_upload_logs(state: Path, serial: str) -> None:
    """Ask the gateway to upload its logs."""
    _queue(state, serial, {"type": "upload_logs"})


@refcloud.command()
@_state_option
@click.argument("serial")
@click.option("--section", type=click.Choice(_SECTIONS), help="Only this part.")
def inspect(state: Path, serial: str, section: str | None) -> None:
    """Show what the cloud received from SERIAL."""
    with _operator(state) as operator:
        report = _run(lambda: operator.inspect(serial))
    _echo(report[section] if section else report)


@refcloud.command()
@_state_option
def page(state: Path) -> None:
    """Where the running cloud's operator page is, and how to log in to it."""
    with _operator(state) as operator:
        click.echo(f"Operator page: {operator.page_url}")
        click.echo(f"Log in with the operator token in {operator.token_path}")
        click.echo(f"Your browser must trust the cloud's CA: {operator.ca_path}")


@refcloud.command()
@_state_option
@click.argument("kind", type=click.Choice(["unavailable", "rate_limited", "delay", "drop"]))
@click.option("--target", default="*", show_default=True, help="Service, route or '*'.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--retry-after", "retry_after_s", default=1, show_default=True, type=int)
@click.option("--delay", "delay_s", default=1.0, show_default=True, type=float)
def fault(
    state: Path, kind: str, target: str, count: int, retry_after_s: int, delay_s: float
) -> None:
    """Make the next COUNT requests to TARGET fail as KIND."""
    with _operator(state) as operator:
        _echo(
            _run(
                lambda: operator.inject_fault(
                    kind, target, count, retry_after_s=retry_after_s, delay_s=delay_s
                )
            )
        )


@refcloud.command()
@_state_option
@click.option("--clear", is_flag=True, help="Remove every pending fault.")
def faults(state: Path, clear: bool) -> None:
    """List (or clear) the pending faults."""
    with _operator(state) as operator:
        if clear:
            _run(operator.clear_faults)
        _echo(_run(operator.faults))
