"""The web listener's certificate: the user's, or one made for this gateway and kept.

With ``[web] certificate`` and ``key`` the pages are served with them (the
key file must not be readable by every user). Without, the daemon makes a
self-signed certificate once — an ECDSA P-256 key, valid ten years, for the
gateway's host name, ``localhost``, loopback and the listen address — and
keeps it in the storage folder (``web-tls/``, key mode 0600), so a browser
told to trust it keeps trusting it across restarts. Its SHA-256 fingerprint is
logged at each start: compare it with the one the browser shows.

cryptography is imported only to make the certificate, never on a start that
finds one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from panelfast._durable import write_atomically
from panelfast.exceptions import ConfigError, ConfigIssue

__all__ = ["TlsFiles", "fingerprint", "server_context", "tls_files"]

TLS_DIR = "web-tls"
_DAYS = 3650


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certificate: Path
    key: Path
    #: Made by the gateway (not the user's).
    generated: bool


def tls_files(
    storage: Path, listen_host: str, certificate: Path | None, key: Path | None
) -> TlsFiles:
    """The certificate and key to serve with; made now if neither is configured nor kept."""
    if certificate is not None and key is not None:
        _check_user_files(certificate, key)
        return TlsFiles(certificate, key, generated=False)
    folder = storage / TLS_DIR
    files = TlsFiles(folder / "cert.pem", folder / "key.pem", generated=True)
    if not (files.certificate.exists() and files.key.exists()):
        _generate(files, listen_host)
    return files


def _check_user_files(certificate: Path, key: Path) -> None:
    issues = []
    for name, path in (("web.certificate", certificate), ("web.key", key)):
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            issues.append(ConfigIssue(name, f"cannot read {path}: {exc.strerror}"))
            continue
        if name == "web.key" and mode & stat.S_IRWXO:
            issues.append(
                ConfigIssue(
                    name,
                    f"mode {stat.S_IMODE(mode):04o} lets every user read the private key; "
                    f"run: chmod 600 {path}",
                )
            )
    if issues:
        raise ConfigError("(web)", issues)


def _hosts(listen_host: str) -> list[str]:
    hosts = [socket.gethostname(), "localhost", "127.0.0.1", "::1"]
    if listen_host not in ("0.0.0.0", "::", ""):  # noqa: S104 (names, not a bind)
        hosts.append(listen_host)
    return list(dict.fromkeys(hosts))


def _generate(files: TlsFiles, listen_host: str) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    hosts = _hosts(listen_host)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "panelfast gateway"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a certificate without its key would be kept and unusable.
    write_atomically(
        files.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    write_atomically(
        files.certificate, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644
    )


def fingerprint(certificate: Path) -> str:
    """The SHA-256 fingerprint of a PEM certificate, as browsers show it (AB:CD:...)."""
    der = ssl.PEM_cert_to_DER_cert(certificate.read_text(encoding="ascii"))
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2 or newer, the standard library's server defaults otherwise (no client
    certificates: the system's CAs are not loaded for nothing)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.certificate, files.key)
    except (OSError, ssl.SSLError) as exc:
        where = "web.certificate" if not files.generated else "web (generated certificate)"
        raise ConfigError(
            "(web)",
            [ConfigIssue(where, f"cannot use {files.certificate} with {files.key}: {exc}")],
        ) from None
    return context
