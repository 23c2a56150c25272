"""The publication method and the [email] section: what loads, what is refused and where."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mail_support import PASSWORD, RECIPIENTS, alarm, write_config, write_password
from panelfast.cloud import StateStore
from panelfast.config import load_settings
from panelfast.control import AuditLog
from panelfast.exceptions import ConfigError, PublicationConflict
from panelfast.publication import change_publication_method, ensure_cloud_services_allowed


def issues(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return {issue.key: issue.message for issue in info.value.issues}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_email_section_loads_with_its_paths_and_a_masked_password(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        port=2525,
        alarms=[alarm("hot"), alarm("cold", condition="under", severity="low")],
        password_file=write_password(tmp_path / "pw"),
        email={"ca_bundle": "smtp-ca.pem"},
    )
    settings = load_settings(path)
    email = settings.email
    assert email is not None
    assert settings.publication.method == "email"
    assert email.recipients == RECIPIENTS
    assert email.smtp_port == 2525
    assert email.ca_bundle == tmp_path / "smtp-ca.pem"
    assert [(a.id, a.condition, a.severity) for a in email.alarms] == [
        ("hot", "over", "high"),
        ("cold", "under", "low"),
    ]
    password = email.password()
    assert password is not None
    assert password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(password)
    # The password is never part of the settings: only its file is.
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in settings.model_dump_json()
    assert email.model_copy(update={"port": None, "security": "tls"}).smtp_port == 465


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    password = write_password(tmp_path / "pw", mode=0o644)
    settings = load_settings(write_config(tmp_path, port=2525, password_file=password))
    assert settings.email is not None
    with pytest.raises(ConfigError) as info:
        settings.email.password()
    assert [i.key for i in info.value.issues] == ["email.password_file"]
    message = str(info.value)
    assert "mode 0644" in message
    assert f"chmod 600 {password}" in message
    assert PASSWORD not in message


def test_recipients_are_bounded_and_validated_each_named_by_its_path(tmp_path: Path) -> None:
    eleven = [f"ops{i}@example.com" for i in range(11)]
    found = issues(write_config(tmp_path, port=2525, recipients=eleven))
    assert list(found) == ["email.recipients"]
    assert "at most 10" in found["email.recipients"]

    long_address = "a" * 60 + "@" + "b" * 60 + ".example.com"  # 133 characters
    bad = ["ops@example.com", "not an address", long_address, "OPS@example.com"]
    found = issues(write_config(tmp_path, port=2525, recipients=bad))
    assert set(found) == {"email.recipients[1]", "email.recipients[2]"}
    assert "not a valid email address" in found["email.recipients[1]"]
    assert "133 characters; an address is at most 128" in found["email.recipients[2]"]

    twice = ["ops@example.com", "OPS@example.com"]
    found = issues(write_config(tmp_path, port=2525, recipients=twice))
    assert "listed twice" in found["email.recipients"]

    found = issues(write_config(tmp_path, port=2525, email={"from_address": "gateway@"}))
    assert list(found) == ["email.from_address"]


def test_email_alarms_are_checked_as_the_remote_configurations_are(tmp_path: Path) -> None:
    alarms = [
        alarm("a0"),
        alarm("a1", threshold="high"),
        alarm("a2", hysteresis=-1),
        alarm("a0", delay_s=2),
        alarm("a4", device="nowhere"),
        alarm("a5", condition="sideways"),
    ]
    found = issues(write_config(tmp_path, port=2525, alarms=alarms))
    assert set(found) == {
        "email.alarms[1].threshold",
        "email.alarms[2].hysteresis",
        "email.alarms[3].id",
        "email.alarms[5].condition",
    }
    assert "already used by email.alarms[0]" in found["email.alarms[3].id"]
    # The device is checked once the rules themselves are valid.
    good = [alarm("a0"), alarm("a1", device="nowhere")]
    found = issues(write_config(tmp_path, port=2525, alarms=good))
    assert found == {
        "email.alarms[1].device": "unknown device 'nowhere': not among the [[devices]]"
    }

    many = [alarm(f"a{i}") for i in range(101)]
    found = issues(write_config(tmp_path, port=2525, alarms=many))
    assert found == {"email.alarms": "101 alarms; at most 100"}


def test_email_publication_needs_its_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, port=2525)
    text = path.read_text(encoding="utf-8")
    without = text[: text.index("[email]")] + text[text.index("[[devices]]") :]
    path.write_text(without, encoding="utf-8")
    found = issues(path)
    assert list(found) == ["publication.method"]
    assert "needs an [email] section" in found["publication.method"]


def _with_former_key(path: Path, value: str, *, keep_method: str | None = None) -> Path:
    text = path.read_text(encoding="utf-8")
    method = text[text.index("[publication]") : text.index("[email]")]
    kept = f'[publication]\nmethod = "{keep_method}"\n\n' if keep_method else ""
    text = text.replace(method, kept)
    text = text.replace("[cloud]\n", f'[cloud]\nalarm_publication = "{value}"\n')
    path.write_text(text, encoding="utf-8")
    return path


def test_files_with_the_former_key_still_load(tmp_path: Path) -> None:
    path = _with_former_key(write_config(tmp_path, port=2525), "email")
    settings = load_settings(path)
    assert settings.publication.method == "email"
    assert settings.cloud.alarm_publication == "email"

    path = _with_former_key(write_config(tmp_path, port=2525), "cloud")
    assert load_settings(path).publication.method == "cloud"

    path = _with_former_key(write_config(tmp_path, port=2525), "cloud", keep_method="email")
    found = issues(path)
    assert "replaced by publication.method" in found["cloud.alarm_publication"]

    path = _with_former_key(write_config(tmp_path, port=2525), "pigeon")
    found = issues(path)
    assert "now publication.method" in found["cloud.alarm_publication"]


def test_the_method_leaves_cloud_only_once_cloud_services_are_off() -> None:
    with pytest.raises(PublicationConflict) as refused:
        change_publication_method("cloud", "email", cloud_on=True)
    assert str(refused.value) == (
        "cannot enable email publication of alarms: cloud services are on (connected), and "
        "the two are mutually exclusive; Disconnect first, then set the publication method "
        "to email"
    )
    assert refused.value.hint == "run: panelfast disconnect"
    assert refused.value.turn_off == "cloud services"
    with pytest.raises(PublicationConflict, match="Disconnect first"):
        change_publication_method("cloud", "none", cloud_on=True)
    assert not change_publication_method("cloud", "cloud", cloud_on=True).changed

    # Disconnected, every switch is direct.
    change = change_publication_method("cloud", "email", cloud_on=False)
    assert change.changed
    assert change.audit_text() == "publication method changed from cloud to email"
    assert change_publication_method("email", "cloud", cloud_on=False).method == "cloud"
    assert change_publication_method("none", "email", cloud_on=False).method == "email"
    assert not change_publication_method("email", "email", cloud_on=False).changed
    with pytest.raises(ConfigError, match="must be one of 'cloud', 'email', 'none'"):
        change_publication_method("none", "pigeon", cloud_on=False)


def test_connect_needs_the_method_cloud() -> None:
    ensure_cloud_services_allowed("cloud")
    with pytest.raises(PublicationConflict) as refused:
        ensure_cloud_services_allowed("email")
    assert str(refused.value).startswith(
        "cloud services are off: the publication method is email; set it to cloud first"
    )
    assert refused.value.hint == "run: panelfast publication method cloud"
    with pytest.raises(PublicationConflict, match="the publication method is none"):
        ensure_cloud_services_allowed("none")


def _store_connect(path: Path, connect: bool) -> None:
    """The Connect as the gateway stores it (``panelfast connect`` without a reachable cloud)."""
    settings = load_settings(path)
    store = StateStore(settings.storage.dir)
    state = store.load()
    state.connect = connect
    store.save(state)


def test_enabling_email_while_cloud_services_are_on_is_refused_by_the_command(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, port=2525, method="cloud", alarms=[alarm("hot")])
    _store_connect(path, True)
    before = path.read_text(encoding="utf-8")
    for command in (["set", "publication.method"], ["publication", "method"]):
        result = cli(*command, "email", "--config", str(path))
        assert result.returncode == 1
        assert "cloud services are on (connected)" in result.stderr
        assert "Disconnect first" in result.stderr
        assert "hint: run: panelfast disconnect" in result.stderr
        assert "Traceback" not in result.stderr
        assert path.read_text(encoding="utf-8") == before

    _store_connect(path, False)
    result = cli("publication", "method", "email", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "publication method changed from cloud to email" in result.stdout
    assert tomllib.loads(path.read_text(encoding="utf-8"))["publication"]["method"] == "email"
    settings = load_settings(path)
    assert settings.email is not None
    assert [a.id for a in settings.email.alarms] == ["hot"]

    shown = cli("publication", "--config", str(path))
    assert shown.returncode == 0, shown.stderr
    assert "gateway not running" in shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "Publication method: email (alarms of [[email.alarms]] by email)"
    assert lines[1] == "Cloud services:     off"
    assert "Recipients:         " + ", ".join(RECIPIENTS) in lines
    assert PASSWORD not in shown.stdout

    # Each switch made here is in the gateway's audit log, refusals too.
    settings = load_settings(path)
    audit = AuditLog(settings.storage.dir / "audit.sqlite")
    try:
        entries = [(e.action, e.detail, e.outcome.split(":")[0]) for e in audit.recent()]
    finally:
        audit.close()
    assert entries == [
        ("publication.method", {"method": "email"}, "PublicationConflict"),
        ("publication.method", {"method": "email"}, "PublicationConflict"),
        ("publication.method", {"method": "email"}, "ok"),
    ]

    # Connect from here is refused in email mode, saying what to do.
    result = cli("connect", "--config", str(path))
    assert result.returncode == 1
    assert "cloud services are off: the publication method is email" in result.stderr
    assert "hint: run: panelfast publication method cloud" in result.stderr
    assert "Traceback" not in result.stderr


def test_email_alarms_on_a_measurement_the_models_lack_are_named(tmp_path: Path) -> None:
    alarms = [alarm("a0"), alarm("a1", measurement="Nope")]
    settings = load_settings(write_config(tmp_path, port=2525, alarms=alarms))
    assert settings.email is not None
    with pytest.raises(ConfigError) as info:
        settings.email.check_measurements({("mb-1", "VoltageAN")})
    assert [(i.key, i.message) for i in info.value.issues] == [
        ("email.alarms[1].measurement", "device 'mb-1' has no measurement 'Nope'")
    ]
    settings.email.check_measurements({("mb-1", "VoltageAN"), ("mb-1", "Nope")})


def test_email_alarms_the_models_lack_are_refused_when_switching(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, port=2525, method="none", alarms=[alarm("a0", measurement="Nope")]
    )
    result = cli("publication", "method", "email", "--config", str(path))
    assert result.returncode == 1
    assert "email.alarms[0].measurement: device 'mb-1' has no measurement 'Nope'" in result.stderr
    assert "Traceback" not in result.stderr
    assert tomllib.loads(path.read_text(encoding="utf-8"))["publication"]["method"] == "none"
