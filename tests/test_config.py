"""The configuration file: a bad file names every offending key and the problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from panelfast.config import load_settings, read_claim_key, write_secret
from panelfast.exceptions import ConfigError

KEY = "ab" * 32


def write_config(tmp_path: Path, body: str) -> Path:
    write_secret(tmp_path / "claim.key", KEY)
    path = tmp_path / "panelfast.toml"
    path.write_text(body, encoding="utf-8")
    return path


GOOD = """
[identity]
serial = "PS-0042-7A19"
mac = "aa:bb:cc:dd:ee:ff"
claim_key_file = "claim.key"

[cloud]
bootstrap_url = "https://127.0.0.1:8443"

[[devices]]
id = "mb-1"
name = "Main incomer"
model = "PM5560"
connection = { type = "tcp", host = "127.0.0.1", port = 5020, unit_id = 1 }

[[devices]]
id = "io-1"
name = "IO module"
model = "IO-C"
connection = { type = "rtu", port = "/dev/ttyUSB0", baud_rate = 19200, unit_id = 7 }
"""


def test_good_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, GOOD))
    assert settings.identity.serial == "PS-0042-7A19"
    assert settings.identity.claim_key_file == tmp_path / "claim.key"
    assert [d.id for d in settings.devices] == ["mb-1", "io-1"]
    assert settings.devices[1].connection.type == "rtu"
    assert settings.gateway.outputs_remote_control is False
    assert settings.identity.claim_key().get_secret_value() == KEY


def test_every_bad_key_is_named(tmp_path: Path) -> None:
    bad = (
        GOOD.replace("port = 5020", "port = 70000")
        .replace('mac = "aa:bb:cc:dd:ee:ff"', 'mac = "nope"')
        .replace("unit_id = 7", "unit_id = 300")
    )
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(tmp_path, bad + "\n[cloud2]\nx = 1\n"))
    keys = {issue.key for issue in info.value.issues}
    assert keys == {
        "identity.mac",
        "devices[0].connection.port",
        "devices[1].connection.unit_id",
        "cloud2",
    }
    assert "devices[0].connection.port" in str(info.value)


def test_plain_http_cloud_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(tmp_path, GOOD.replace("https://", "http://")))
    assert [i.key for i in info.value.issues] == ["cloud.bootstrap_url"]
    assert "HTTPS" in info.value.issues[0].message


def test_duplicate_device_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="used twice"):
        load_settings(write_config(tmp_path, GOOD.replace('id = "io-1"', 'id = "mb-1"')))


def test_not_toml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write_config(tmp_path, "[identity\n"))


def test_claim_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "claim.key"
    write_secret(path, KEY)
    assert (path.stat().st_mode & 0o777) == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_claim_key(path)


def test_claim_key_never_shown(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, GOOD))
    secret = settings.identity.claim_key()
    assert KEY not in repr(secret)
    assert KEY not in str(secret)


def test_numbers_and_booleans_are_not_read_from_text(tmp_path: Path) -> None:
    bad = (
        GOOD.replace("port = 5020", 'port = "5020"')
        .replace("unit_id = 7", "unit_id = 7.0")
        .replace("[cloud]\n", '[cloud]\nrequest_timeout_s = "5"\n')
        + '\n[gateway]\noutputs_remote_control = "true"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(tmp_path, bad))
    assert {issue.key: issue.message for issue in info.value.issues} == {
        "devices[0].connection.port": 'a whole number, not the text "5020" '
        "(write it without quotes)",
        "devices[1].connection.unit_id": "a whole number, not 7.0",
        "cloud.request_timeout_s": 'a number, not the text "5" (write it without quotes)',
        "gateway.outputs_remote_control": 'true or false, not the text "true" '
        "(write it without quotes)",
    }


def test_toml_types_are_taken_as_they_are(tmp_path: Path) -> None:
    good = GOOD.replace("[cloud]\n", "[cloud]\nrequest_timeout_s = 5\n") + (
        "\n[gateway]\noutputs_remote_control = false\n"
    )
    settings = load_settings(write_config(tmp_path, good))
    assert settings.cloud.request_timeout_s == 5.0
    assert settings.gateway.outputs_remote_control is False


def test_what_the_file_refers_to_is_checked_too(tmp_path: Path) -> None:
    bad = GOOD.replace('model = "IO-C"', 'model = "IO-D"') + (
        f'\n[gateway]\nmodel_dirs = ["{tmp_path / "models"}"]\n'
    )
    path = write_config(tmp_path, bad)
    os.chmod(tmp_path / "claim.key", 0o640)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [issue.key for issue in info.value.issues] == [
        "identity.claim_key_file",
        "gateway.model_dirs",
        "devices[1].model",
    ]
    assert "chmod 600" in info.value.issues[0].message
    assert "no such folder of models" in info.value.issues[1].message
    assert info.value.issues[2].message == (
        "IO-D: no model of that name (known: IO-C, PM5560, iEM3255)"
    )


def test_a_missing_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in info.value.issues[0].message
    assert "no such file" in info.value.issues[0].message
