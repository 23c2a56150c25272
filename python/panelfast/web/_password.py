"""The web login's password: argon2id-hashed in the storage folder, mode 0600.

Set with ``panelfast web set-password``; when none is set, the daemon makes one
at its first start with the web pages on, and shows it once (see
:func:`initial_password`). Only the hash is kept: ``web-password`` holds one
argon2id string, with its parameters, so a hash made with other parameters
still verifies.

The parameters are OWASP's first argon2id choice (19 MiB, 2 passes, 1 lane)
rather than argon2-cffi's default (64 MiB, 4 lanes): a gateway has little
memory and few cores, and every login and every basic-auth scrape pays them.
The daemon re-reads the file at each check, so a password set while it runs
takes effect at once; a changed hash ends every session made with the old one
(:meth:`PasswordFile.fingerprint`).
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from panelfast._durable import write_atomically
from panelfast.exceptions import PanelfastError

__all__ = [
    "INITIAL_FILE",
    "MIN_LENGTH",
    "PASSWORD_FILE",
    "PasswordFile",
    "WebPasswordError",
    "initial_password",
]

PASSWORD_FILE = "web-password"  # noqa: S105 (a file name)
#: Where a password generated at first start waits to be read, when no terminal shows it.
INITIAL_FILE = "web-initial-password"
MIN_LENGTH = 10
MAX_LENGTH = 256

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class WebPasswordError(PanelfastError):
    """A password refused (too short...) or a password file that cannot be used."""


def check_new_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WebPasswordError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WebPasswordError(f"the password must have at most {MAX_LENGTH} characters")
    if password != password.strip():
        raise WebPasswordError("the password must not begin or end with a space")


class PasswordFile:
    """The hash in ``<storage>/web-password``."""

    def __init__(self, storage: Path) -> None:
        self.path = storage / PASSWORD_FILE
        self.initial_path = storage / INITIAL_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def _hash(self) -> str | None:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise WebPasswordError(f"{self.path}: cannot read the web password: {exc}") from None
        return text or None

    def set(self, password: str) -> None:
        """Keep ``password``'s hash (0600); the generated first password, if any, is gone."""
        check_new_password(password)
        write_atomically(self.path, _HASHER.hash(password).encode("ascii") + b"\n")
        self.initial_path.unlink(missing_ok=True)

    def verify(self, password: str) -> bool:
        """Whether ``password`` is the web password (slow on purpose: call off the loop)."""
        stored = self._hash()
        if stored is None or not password or len(password) > MAX_LENGTH:
            return False
        try:
            return _HASHER.verify(stored, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            raise WebPasswordError(
                f"{self.path} does not hold an argon2 hash: set the password again "
                "(panelfast web set-password)"
            ) from None

    def fingerprint(self) -> str:
        """Changes whenever the password does (sessions are bound to it)."""
        stored = self._hash() or ""
        return hashlib.sha256(stored.encode()).hexdigest()[:16]


def initial_password(passwords: PasswordFile) -> str | None:
    """A password for a gateway that has none, set now and returned to be shown
    once (None: one is set already)."""
    if passwords.exists():
        return None
    # Four groups of five from an unambiguous alphabet: about 100 bits, easy to type.
    alphabet = "abcdefghijkmnopqrstuvwxyz23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    password = "-".join(groups)
    passwords.set(password)
    return password
