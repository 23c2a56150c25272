"""A newcomer's mistakes, each answered in one clear line: the command as a user runs it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli_support import panelfast
from panelfast.config import write_secret

CONFIG = """
[identity]
serial = "PS-0042-7A19"
mac = "aa:bb:cc:dd:ee:ff"
claim_key_file = "claim.key"

[cloud]
bootstrap_url = "https://cloud.example.net"
request_timeout_s = 10                  # a TOML integer where seconds may have a fraction

[time]
mode = "manual"

[storage]
dir = "state"

[[devices]]
id = "mb-1"
name = "Main incomer"
model = "PM5560"
connection = { type = "tcp", host = "127.0.0.1", port = 502, unit_id = 1 }
"""

UNKNOWN_MODEL = (
    "Error: devices[0].model: PM5561: no model of that name (known: IO-C, PM5560, iEM3255)\n"
)

#: Every command that reads the configuration file.
COMMANDS = [
    ["run"],
    ["status"],
    ["connect"],
    ["disconnect"],
    ["identification"],
    ["firewall"],
    ["backlog"],
    ["topology", "show"],
    ["topology", "publish"],
    ["remote-config", "status"],
    ["set", "--config", "{config}", "storage.quota_mb", "100"],
    ["simulate"],
]


def write(folder: Path, text: str = CONFIG) -> Path:
    write_secret(folder / "claim.key", "ab" * 32)
    path = folder / "panelfast.toml"
    path.write_text(text, encoding="utf-8")
    return path


def command(words: list[str], config: Path) -> list[str]:
    if "{config}" in words:
        return [str(config) if w == "{config}" else w for w in words]
    return [*words, "--config", str(config)]


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_command_refuses_an_unknown_model_in_one_line(
    words: list[str], tmp_path: Path
) -> None:
    config = write(tmp_path, CONFIG.replace('model = "PM5560"', 'model = "PM5561"'))
    result = panelfast(*command(words, config))
    assert (result.returncode, result.stdout, result.stderr) == (2, "", UNKNOWN_MODEL)


def test_a_missing_file_is_said_missing_and_where_it_was_looked_for(tmp_path: Path) -> None:
    result = panelfast("status", "--config", "nope.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"Error: nope.toml: no such file (looked for {tmp_path}/nope.toml)\n"


def test_a_number_written_as_text_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG.replace("port = 502", 'port = "502"'))
    result = panelfast("status", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr == (
        'Error: devices[0].connection.port: a whole number, not the text "502" '
        "(write it without quotes)\n"
    )


def test_every_problem_of_a_file_is_named_at_once(tmp_path: Path) -> None:
    bad = CONFIG.replace("port = 502", "port = 70000").replace(
        'model = "PM5560"', 'model = "PM5561"'
    )
    (tmp_path / "claim.key").unlink(missing_ok=True)
    config = tmp_path / "panelfast.toml"
    config.write_text(bad, encoding="utf-8")
    result = panelfast("firewall", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    # The file's own problems first; what it refers to is checked once it reads.
    assert lines == [
        "Error: devices[0].connection.port: Input should be less than or equal to 65535"
    ]
    config.write_text(bad.replace("port = 70000", "port = 502"), encoding="utf-8")
    lines = panelfast("firewall", "--config", str(config)).stderr.splitlines()
    assert lines == [
        f"Error: identity.claim_key_file: cannot read {tmp_path / 'claim.key'}: "
        "No such file or directory",
        UNKNOWN_MODEL.strip(),
    ]


def test_toml_types_need_no_conversion(tmp_path: Path) -> None:
    result = panelfast("status", "--config", str(write(tmp_path)))
    assert result.returncode == 3, "no gateway runs: it says so, and what it saved last"
    assert "Connection status:      Not connected" in result.stdout


def test_cloud_time_before_the_first_connection_waits_for_the_clouds_server(
    tmp_path: Path,
) -> None:
    config = write(tmp_path, CONFIG.replace('mode = "manual"', 'mode = "cloud"'))
    result = panelfast("status", "--config", str(config))
    assert result.returncode == 3, result.stderr
    assert (
        "Time synchronisation:   not synchronised yet: waiting for the cloud to name its time "
        "server (mode cloud, at the first connection); pool.ntp.org until then"
    ) in result.stdout


def test_remote_config_status_takes_the_configuration_like_every_command(
    tmp_path: Path,
) -> None:
    result = panelfast("remote-config", "status", "--config", str(write(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "applied: none (sampling waits for a valid remote configuration)",
        "received: none",
    ]
    assert not (tmp_path / "state").exists(), "a status creates nothing"
    assert panelfast("remote-config", "status", "--state", "x.sqlite").returncode == 2


def test_modbus_read_on_a_closed_port_names_the_device_address_and_count() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # released: nothing listens there
    result = panelfast(
        "modbus", "read", f"127.0.0.1:{port}", "--unit", "3", "--address", "3027",
        "--type", "FLOAT32", "--timeout-ms", "200",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == " 3027  not available\n"
    assert result.stderr.startswith(
        f"Error: reading 2 holding registers at address 3027 from 127.0.0.1:{port} (unit 3) "
        "failed: "
    ), result.stderr
    # The reason: the first attempt's, or a later one's that recalls it.
    assert "cannot connect: Connection refused" in result.stderr
    assert "@3027+2" not in result.stderr
    assert "next attempt" not in result.stderr  # a single read has none
