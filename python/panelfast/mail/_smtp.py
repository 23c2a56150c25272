"""Sending over SMTP: TLS always (STARTTLS or implicit), certificates verified, AUTH.

The stdlib's :mod:`smtplib`, run in a worker thread by the mailer: alarms are
few, so one blocking session at a time costs nothing, it adds no dependency
to the daemon, and its low-level calls (``mail``, ``rcpt``, ``data``) give
the server's exact answer at every step, which is what a user fixing a mail
setup needs to see. Every failure is a :class:`~panelfast.exceptions.MailError`
naming the step and carrying the server's code and text.

With ``starttls`` a server that does not offer STARTTLS is refused: mail is
never sent in the clear, and a man in the middle cannot strip the offer to
make it so. The password is sent only inside TLS and never logged.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from types import TracebackType

from pydantic import SecretStr

from panelfast.config import EmailSettings
from panelfast.exceptions import MailError

__all__ = ["Delivery", "SmtpAnswer", "SmtpSession"]

_REFUSED = {
    "connect": "the server did not accept the connection",
    "starttls": "the server did not start TLS",
    "login": "the server refused the login",
    "mail from": "the server refused the sender (from_address)",
    "rcpt to": "the server refused every recipient",
    "data": "the server refused the message",
}


@dataclass(frozen=True, slots=True)
class SmtpAnswer:
    """A reply of the SMTP server, exactly as it gave it."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The server took the message: its answer, and the recipients it refused
    (the others were sent the message; sending it again would repeat it to them)."""

    answer: SmtpAnswer
    recipients: tuple[str, ...]
    refused: tuple[tuple[str, SmtpAnswer], ...] = ()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _answer_error(stage: str, code: int, reply: bytes | str) -> MailError:
    return MailError(
        stage, _REFUSED[stage], code=code, text=_text(reply), transient=400 <= code < 500
    )


@contextmanager
def _stage(stage: str, where: str) -> Iterator[None]:
    """Turn whatever smtplib, ssl or the socket raise during ``stage`` into a MailError."""
    try:
        yield
    except MailError:
        raise
    except smtplib.SMTPResponseException as exc:
        raise _answer_error(stage, exc.smtp_code, exc.smtp_error) from None
    except smtplib.SMTPServerDisconnected:
        raise MailError(stage, f"{where} closed the connection") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(stage, f"{where}: {exc}", transient=False) from None
    except smtplib.SMTPException as exc:
        raise MailError(stage, f"{where}: {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise MailError(
            stage,
            f"the certificate of {where} was not verified ({exc.verify_message}); "
            "check [email] host and ca_bundle",
            transient=False,
        ) from None
    except ssl.SSLError as exc:
        raise MailError(
            stage,
            f"TLS with {where} failed ({exc.reason or exc}); check [email] security "
            '("tls" for a server that expects TLS from the first byte, usually port 465)',
        ) from None
    except TimeoutError:
        raise MailError(stage, f"no answer from {where} in time") from None
    except OSError as exc:
        raise MailError(stage, f"cannot reach {where}: {exc.strerror or exc}") from None


def _tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """A verifying TLS ≥ 1.2 context: the CA bundle if given, else the system store."""
    try:
        context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise MailError(
            "connect",
            f"the CA bundle {ca_bundle} cannot be loaded ({exc}); check [email] ca_bundle",
            transient=False,
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SmtpSession:
    """One encrypted (and, with a username, authenticated) session with the SMTP server."""

    def __init__(self, settings: EmailSettings, password: SecretStr | None) -> None:
        self.settings = settings
        host, port = settings.host, settings.smtp_port
        where = f"the SMTP server {host}:{port}"
        self._where = where
        context = _tls_context(settings.ca_bundle)
        # EHLO names the host without a DNS look-up (smtplib's default
        # getfqdn() can hang for seconds where DNS is missing).
        name = socket.gethostname() or "panelfast"
        with _stage("connect", where):
            if settings.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, local_hostname=name, timeout=settings.timeout_s, context=context
                )
            else:
                smtp = smtplib.SMTP(host, port, local_hostname=name, timeout=settings.timeout_s)
        self._smtp = smtp
        try:
            if settings.security == "starttls":
                with _stage("starttls", where):
                    smtp.ehlo_or_helo_if_needed()
                    if not smtp.has_extn("starttls"):
                        raise MailError(
                            "starttls",
                            f"{where} does not offer STARTTLS, and mail is never sent "
                            'unencrypted (security = "tls" if it expects TLS from the first '
                            "byte)",
                            transient=False,
                        )
                    smtp.starttls(context=context)
            with _stage("connect", where):
                smtp.ehlo_or_helo_if_needed()
            if settings.username is not None:
                if password is None:
                    raise MailError("login", "no password (email.password_file)", transient=False)
                with _stage("login", where):
                    smtp.login(settings.username, password.get_secret_value())
                smtp.password = ""  # not kept in memory longer than needed
        except BaseException:
            smtp.close()
            raise

    def send(self, message: EmailMessage) -> Delivery:
        """Send one message to every recipient; returns the server's answer to it."""
        smtp, where = self._smtp, self._where
        sender, recipients = self.settings.from_address, self.settings.recipients
        data = message.as_bytes(policy=SMTP_POLICY)
        with _stage("mail from", where):
            code, reply = smtp.mail(sender)
            if code != 250:
                raise _answer_error("mail from", code, reply)
        refused: list[tuple[str, SmtpAnswer]] = []
        with _stage("rcpt to", where):
            for recipient in recipients:
                code, reply = smtp.rcpt(recipient)
                if code not in (250, 251):
                    refused.append((recipient, SmtpAnswer(code, _text(reply))))
        if len(refused) == len(recipients):
            _, first = refused[0]
            raise MailError(
                "rcpt to",
                _REFUSED["rcpt to"],
                code=first.code,
                text=first.text,
                transient=400 <= first.code < 500,
            )
        with _stage("data", where):
            code, reply = smtp.data(data)
            if code != 250:
                raise _answer_error("data", code, reply)
        return Delivery(SmtpAnswer(code, _text(reply)), recipients, tuple(refused))

    def close(self) -> None:
        """Say QUIT (politely, if the server still listens), then close."""
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            self._smtp.close()

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
