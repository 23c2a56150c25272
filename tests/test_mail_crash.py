"""Alarm emails across a SIGKILL of the process that owns the queue: never lost, in
order, never sent twice; and the one window left, where the duplicate keeps its
Message-ID (see panelfast.mail)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mail_support import (
    Hold,
    Mailbox,
    SmtpCA,
    SmtpServer,
    alarm,
    flapping_readings,
    free_port,
    write_config,
)
from panelfast._native import AlarmSet
from panelfast.config import load_settings
from panelfast.mail import MailEvent

WORKER = Path(__file__).with_name("mail_worker.py")
START_MS = 1_767_225_600_000


def worker(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def wait_line(proc: subprocess.Popen[str], text: str, *, stderr: bool = False) -> None:
    """Read the worker's output until a line holds ``text``."""
    stream = proc.stderr if stderr else proc.stdout
    assert stream is not None
    deadline = time.monotonic() + 60
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            line = stream.readline()
            if text in line:
                return
            if not line:
                raise AssertionError(f"the worker ended before {text!r}")
    raise AssertionError(f"timed out waiting for {text!r}")


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def finish(proc: subprocess.Popen[str]) -> None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "drained" in out


def expected_ids(config: Path, count: int) -> list[str]:
    """The Message-IDs of the events the worker raises, from the same engine and readings."""
    settings = load_settings(config)
    assert settings.email is not None
    rule = settings.email.alarms[0]
    alarms = AlarmSet([(rule.id, 0, rule.condition, rule.threshold, rule.hysteresis, 0)])
    ids = []
    for value, read_ms in flapping_readings(count, START_MS, rule.threshold):
        for event in alarms.evaluate(
            np.array([value]), np.array([True]), np.array([read_ms], dtype=np.int64)
        ):
            mail = MailEvent.of(
                event, rule, gateway_name=settings.identity.name, serial=settings.identity.serial
            )
            ids.append(mail.message_id)
    assert len(ids) == count
    return ids


def test_events_survive_sigkill_while_the_server_is_down_and_mid_backlog(
    tmp_path: Path,
) -> None:
    mailbox = Mailbox()
    server = SmtpServer(SmtpCA(tmp_path), mailbox, port=free_port())
    config = write_config(
        tmp_path, port=server.port, ca_bundle=server.ca.ca_pem, alarms=[alarm("hot", 250.0)]
    )
    ids = expected_ids(config, 6)

    # The server is down: the events are handed over, retried, then the process is killed.
    with worker(config, "produce", "6", str(START_MS)) as proc:
        wait_line(proc, "queued 6")
        wait_line(proc, "alarm emails wait", stderr=True)  # its log: it tried, and failed
        kill(proc)
    assert mailbox.messages() == []

    # The server is back, but its answer to the 3rd email waits; the process is killed
    # before the server took it (it then answers 451: not taken).
    mailbox.hold = Hold(nth=2, reply="451 4.3.0 try again later")
    with server:
        with worker(config, "drain") as proc:
            assert mailbox.hold.arrived.wait(60), "the 3rd email reached the server"
            kill(proc)
        mailbox.hold.release.set()
        assert [r.message_id for r in mailbox.messages()] == ids[:2]

        # Restarted: the rest, in order; nothing sent twice, nothing lost.
        with worker(config, "drain") as proc:
            finish(proc)
    received = mailbox.messages()
    assert [r.message_id for r in received] == ids
    assert all(sorted(r.recipients) == sorted(received[0].recipients) for r in received)


def test_the_crash_window_repeats_one_email_under_the_same_message_id(tmp_path: Path) -> None:
    """The server took the 2nd email, the process died before marking it sent:
    it is sent again on restart, the same email under the same Message-ID, so
    that mail clients that drop duplicates show it once."""
    mailbox = Mailbox()
    mailbox.hold = Hold(nth=1)  # answers 250 once released: the server took it
    with SmtpServer(SmtpCA(tmp_path), mailbox) as server:
        config = write_config(
            tmp_path, port=server.port, ca_bundle=server.ca.ca_pem, alarms=[alarm("hot", 250.0)]
        )
        ids = expected_ids(config, 4)
        with worker(config, "produce", "4", str(START_MS)) as proc:
            assert mailbox.hold.arrived.wait(60), "the 2nd email reached the server"
            kill(proc)
        mailbox.hold.release.set()
        mailbox.wait_for(2)
        with worker(config, "drain") as proc:
            finish(proc)
    received = mailbox.messages()
    assert [r.message_id for r in received] == [ids[0], ids[1], ids[1], ids[2], ids[3]]
    first, again = received[1].message, received[2].message
    for header in ("Subject", "Date", "From", "To", "Message-ID"):
        assert first[header] == again[header]
    assert first.get_body(("plain",)).get_content() == again.get_body(("plain",)).get_content()  # type: ignore[union-attr]
