"""A real SMTP server on loopback for the email publication tests (aiosmtpd).

STARTTLS or implicit TLS with a certificate from a test CA (trustme), AUTH
with aiosmtpd's authenticator, and a mailbox that records every message it
accepted. The server can be stopped and started again on the same port (the
"server down, then back" tests), and its answer to a message can be held
until the test says so (the SIGKILL tests).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from panelfast.config import write_secret

USER = "gateway"
PASSWORD = "correct horse battery staple"
SENDER = "panel-server@example.com"
RECIPIENTS = ("ops@example.com", "maintenance@example.net", "chief@example.org")
KEY = "ab" * 32


@dataclass
class Received:
    """A message the server accepted (answered 250 to)."""

    recipients: list[str]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class Hold:
    """Hold the server's answer to the ``nth`` message (0-based) until ``release`` is set,
    then answer ``reply``; ``arrived`` is set once that message's data was received."""

    nth: int
    reply: str = "250 2.0.0 accepted"
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class Mailbox:
    """The server's handler: records what it accepts; refuses what it is told to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.refuse_recipients: set[str] = set()
        self.hold: Hold | None = None
        self._data_count = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_recipients:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            nth = self._data_count
            self._data_count += 1
        hold = self.hold if self.hold is not None and self.hold.nth == nth else None
        if hold is None or hold.reply.startswith("250"):
            # Taken now (its 250 may be late: aiosmtpd drops a held answer,
            # and the handler, when the client goes away).
            content = envelope.content
            assert isinstance(content, bytes)
            parsed = message_from_bytes(content, policy=default_policy)
            assert isinstance(parsed, EmailMessage)
            with self._lock:
                self.received.append(Received(list(envelope.rcpt_tos), parsed))
        if hold is not None:
            hold.arrived.set()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, hold.release.wait, 120)
            return hold.reply
        return "250 2.0.0 accepted"

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, within_s: float = 60.0) -> list[Received]:
        """Poll until ``count`` messages were accepted."""
        deadline = time.monotonic() + within_s
        while len(self.messages()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {within_s} s: {len(self.messages())} of {count} messages"
                )
            time.sleep(0.05)
        return self.messages()


class SmtpCA:
    """A test CA and the server's certificate for 127.0.0.1, written as PEM files."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_pem = folder / "smtp-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login == USER.encode()
        and data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Security = Literal["starttls", "tls", "plain"]


class _Controller(Controller):
    def factory(self) -> SMTP:
        # With implicit TLS the whole connection is encrypted, but aiosmtpd counts
        # only STARTTLS as TLS and warns that AUTH is allowed without it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return SMTP(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """aiosmtpd on 127.0.0.1:``port``; ``plain`` offers no STARTTLS (to be refused)."""

    def __init__(
        self, ca: SmtpCA, mailbox: Mailbox, security: Security = "starttls", port: int = 0
    ) -> None:
        self.ca = ca
        self.mailbox = mailbox
        self.security = security
        self.port = port or free_port()
        self._controller: _Controller | None = None

    def start(self) -> SmtpServer:
        options: dict[str, Any] = {"authenticator": _authenticate, "auth_required": True}
        if self.security == "starttls":
            options |= {"tls_context": self.ca.server_context(), "require_starttls": True}
        elif self.security == "tls":
            # The whole connection is TLS: aiosmtpd only counts STARTTLS as such.
            options |= {"ssl_context": self.ca.server_context(), "auth_require_tls": False}
        else:
            options |= {"auth_require_tls": False}
        self._controller = _Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, **options
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_password(path: Path, text: str = PASSWORD, mode: int = 0o600) -> Path:
    write_secret(path, text)
    path.chmod(mode)
    return path


def alarm(alarm_id: str = "hot", threshold: float = 10.0, **extra: Any) -> dict[str, Any]:
    return {
        "id": alarm_id,
        "device": "mb-1",
        "measurement": "VoltageAN",
        "condition": "over",
        "threshold": threshold,
        "hysteresis": 0.0,
        "delay_s": 0,
        "severity": "high",
        **extra,
    }


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    folder: Path,
    *,
    port: int,
    security: Literal["starttls", "tls"] = "starttls",
    ca_bundle: Path | None = None,
    method: str = "email",
    recipients: Sequence[str] = RECIPIENTS,
    alarms: Sequence[dict[str, Any]] = (),
    email: dict[str, Any] | None = None,
    password_file: Path | None = None,
) -> Path:
    """A whole configuration file with an [email] section for the server on ``port``."""
    write_secret(folder / "claim.key", KEY)
    if password_file is None:
        password_file = write_password(folder / "smtp-password")
    section = {
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "username": USER,
        "password_file": str(password_file),
        "from_address": SENDER,
        "recipients": list(recipients),
        **({"ca_bundle": str(ca_bundle)} if ca_bundle else {}),
        **(email or {}),
    }
    lines = [
        "[identity]",
        'serial = "PS-0042-7A19"',
        'mac = "aa:bb:cc:dd:ee:ff"',
        'name = "Plant 3 Panel Server"',
        'claim_key_file = "claim.key"',
        "",
        "[cloud]",
        'bootstrap_url = "https://127.0.0.1:8443"',
        "",
        "[storage]",
        f"dir = {_toml(str(folder / 'state'))}",
        "",
        "[publication]",
        f"method = {_toml(method)}",
        "",
        "[email]",
        *(f"{key} = {_toml(value)}" for key, value in section.items()),
        "",
    ]
    for entry in alarms:
        lines += ["[[email.alarms]]", *(f"{k} = {_toml(v)}" for k, v in entry.items()), ""]
    lines += [
        "[[devices]]",
        'id = "mb-1"',
        'name = "Main incomer"',
        'model = "PM5560"',
        'connection = { type = "tcp", host = "127.0.0.1", port = 5020 }',
        "",
    ]
    path = folder / "panelfast.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def flapping_readings(
    count: int, start_ms: int, threshold: float = 250.0
) -> list[tuple[float, int]]:
    """Readings that make an "over ``threshold``" alarm switch at each one: (value, read_ms)."""
    return [
        (threshold + 1 + i if i % 2 == 0 else threshold - 10 - i / 10, start_ms + 1000 * i)
        for i in range(count)
    ]


def wait_until(condition: Callable[[], object], what: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        time.sleep(0.05)


def append_email(
    config: Path,
    *,
    port: int,
    ca_bundle: Path,
    password_file: Path,
    method: str,
    alarms: Sequence[dict[str, Any]] = (),
    recipients: Sequence[str] = RECIPIENTS,
) -> None:
    """Add [publication] and [email] (with its alarms) to a configuration file
    (e.g. the embedded system's), for the server on ``port``."""
    section = {
        "host": "127.0.0.1",
        "port": port,
        "security": "starttls",
        "username": USER,
        "password_file": str(password_file),
        "from_address": SENDER,
        "recipients": list(recipients),
        "ca_bundle": str(ca_bundle),
    }
    lines = ["", "[publication]", f"method = {_toml(method)}", "", "[email]"]
    lines += [f"{key} = {_toml(value)}" for key, value in section.items()]
    for entry in alarms:
        lines += ["", "[[email.alarms]]", *(f"{k} = {_toml(v)}" for k, v in entry.items())]
    with config.open("a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
