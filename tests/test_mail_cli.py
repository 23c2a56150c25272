"""``panelfast email test``, run as users run it, against a real SMTP server on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mail_support import (
    PASSWORD,
    RECIPIENTS,
    Mailbox,
    SmtpCA,
    SmtpServer,
    free_port,
    write_config,
    write_password,
)


def email_test(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelfast", "email", "test", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_the_test_email_reaches_every_recipient_and_shows_the_answer(
    tmp_path: Path, security: str
) -> None:
    mailbox = Mailbox()
    with SmtpServer(SmtpCA(tmp_path), mailbox, security) as server:  # type: ignore[arg-type]
        config = write_config(
            tmp_path,
            port=server.port,
            security=security,  # type: ignore[arg-type]
            ca_bundle=server.ca.ca_pem,
            method="cloud",  # checked before switching to email
        )
        result = email_test(config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"test email sent by 127.0.0.1:{server.port} to 3 recipient(s)",
        "server answer: 250 2.0.0 accepted",
    ]
    (received,) = mailbox.messages()
    assert sorted(received.recipients) == sorted(RECIPIENTS)
    assert received.message["Subject"] == "Test email from Plant 3 Panel Server PS-0042-7A19"
    assert received.message.get_content_type() == "multipart/alternative"


def test_a_wrong_password_shows_the_servers_exact_answer(tmp_path: Path) -> None:
    mailbox = Mailbox()
    with SmtpServer(SmtpCA(tmp_path), mailbox) as server:
        password = write_password(tmp_path / "pw", "hunter2")
        config = write_config(
            tmp_path, port=server.port, ca_bundle=server.ca.ca_pem, password_file=password
        )
        result = email_test(config)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "test email not sent: login: the server refused the login: "
        "the server answered 535 5.7.8 Authentication credentials invalid",
        "server answer: 535 5.7.8 Authentication credentials invalid",
    ]
    assert "hunter2" not in result.stdout + result.stderr
    assert mailbox.messages() == []


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    password = write_password(tmp_path / "pw", mode=0o644)
    config = write_config(tmp_path, port=free_port(), password_file=password)
    result = email_test(config)
    assert result.returncode == 1
    assert "email.password_file: mode 0644 lets others read a secret" in result.stderr
    assert f"chmod 600 {password}" in result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_a_server_that_cannot_be_reached_is_named(tmp_path: Path) -> None:
    port = free_port()
    result = email_test(write_config(tmp_path, port=port))
    assert result.returncode == 1
    assert f"connect: cannot reach the SMTP server 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_without_an_email_section_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=free_port(), method="cloud")
    text = config.read_text(encoding="utf-8")
    config.write_text(text[: text.index("[email]")] + text[text.index("[[devices]]") :])
    result = email_test(config)
    assert result.returncode == 1
    assert "email publication needs an [email] section" in result.stderr
    assert "Traceback" not in result.stderr
