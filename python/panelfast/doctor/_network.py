"""The way to the cloud, layer by layer: DNS, TCP, the proxy's answer, TLS.

Each layer is checked apart so that the first one that fails is named with
its own fix, rather than "the cloud is unreachable". With a proxy, the
gateway resolves and reaches only the proxy; the cloud hosts are the proxy's
to reach, which its answer to ``CONNECT`` tells.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import datetime
import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

from panelfast.cloud import CloudState, Endpoint, ssl_context
from panelfast.config import Settings
from panelfast.doctor._check import Check
from panelfast.exceptions import CloudError

__all__ = ["Target", "cloud_checks", "targets"]

#: A certificate that expires sooner than this is flagged.
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True, slots=True)
class Target:
    """An HTTPS endpoint of the cloud and what the gateway uses it for."""

    endpoint: Endpoint
    purposes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.endpoint} ({', '.join(self.purposes)})"


def targets(settings: Settings, state: CloudState) -> tuple[list[Target], list[str]]:
    """The cloud's HTTPS endpoints, each once; and the services not known yet."""
    found: dict[Endpoint, list[str]] = {}
    unknown = []
    for purpose, url in (
        ("bootstrap", str(settings.cloud.bootstrap_url)),
        ("hub", state.hub_url),
        ("upload", state.upload_url),
    ):
        if url:
            found.setdefault(Endpoint.of(url), []).append(purpose)
        else:
            unknown.append(purpose)
    return [Target(e, tuple(p)) for e, p in found.items()], unknown


def _resolve(host: str, port: int, timeout_s: float) -> list[str]:
    # getaddrinfo has no timeout of its own: wait for it in a worker, at most timeout_s.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        future = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        infos = future.result(timeout=timeout_s)
    finally:
        pool.shutdown(wait=False)
    return sorted({str(info[4][0]) for info in infos})


def dns_check(host: str, port: int, role: str, timeout_s: float) -> Check:
    what = f"DNS {host} ({role})"
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        pass
    else:
        return Check(what, True, "an address: nothing to resolve")
    try:
        addresses = _resolve(host, port, timeout_s)
    except (OSError, concurrent.futures.TimeoutError) as exc:
        reason = getattr(exc, "strerror", None) or "no answer in time"
        return Check(
            what,
            False,
            f"not resolved: {reason}",
            f"check the gateway's DNS server (/etc/resolv.conf) and the spelling of {host} "
            f"in the configuration",
        )
    return Check(what, True, ", ".join(addresses))


def _connect(endpoint: Endpoint, timeout_s: float) -> socket.socket:
    return socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)


def tcp_check(endpoint: Endpoint, role: str, timeout_s: float, *, proxy: bool) -> Check:
    what = f"TCP {endpoint} ({role})"
    try:
        with _connect(endpoint, timeout_s):
            pass
    except TimeoutError:
        found, refused = f"no answer within {timeout_s:g} s", False
    except OSError as exc:
        found, refused = exc.strerror or str(exc), isinstance(exc, ConnectionRefusedError)
    else:
        return Check(what, True, "connected")
    if proxy:
        fix = (
            f"nothing accepts TCP at the proxy {endpoint}: check [cloud] proxy, that the proxy "
            f"runs, and that the firewall allows TCP to {endpoint}"
        )
    elif refused:
        fix = (
            f"nothing accepts HTTPS at {endpoint}: check the host and port of [cloud] "
            "bootstrap_url and that the cloud service is up (a firewall that rejects "
            "connections shows the same)"
        )
    else:
        fix = (
            f"the firewall must allow TCP from the gateway to {endpoint} (HTTPS); if the site "
            "only lets HTTPS out through a proxy, set [cloud] proxy"
        )
    return Check(what, False, found, fix)


def _proxy_connect(
    proxy_url: str, endpoint: Endpoint, timeout_s: float
) -> tuple[socket.socket, str]:
    """A tunnel through the proxy to ``endpoint``: (socket, status line); the socket is
    the caller's to close (open only on a 200 answer)."""
    url = urllib.parse.urlsplit(proxy_url)
    proxy = Endpoint(url.hostname or "", url.port or 80)
    sock = _connect(proxy, timeout_s)
    try:
        request = f"CONNECT {endpoint} HTTP/1.1\r\nHost: {endpoint}\r\n"
        if url.username is not None:
            user = urllib.parse.unquote(url.username)
            password = urllib.parse.unquote(url.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request += f"Proxy-Authorization: Basic {token}\r\n"
        sock.sendall((request + "\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer and len(answer) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        status = answer.split(b"\r\n", 1)[0].decode("latin-1").strip()
    except OSError:
        sock.close()
        raise
    if status.split(" ")[1:2] != ["200"]:
        sock.close()
    return sock, status


def proxy_check(proxy_url: str, target: Target, timeout_s: float) -> Check:
    what = f"proxy CONNECT {target}"
    try:
        sock, status = _proxy_connect(proxy_url, target.endpoint, timeout_s)
    except OSError as exc:
        return Check(
            what,
            False,
            f"no answer: {exc.strerror or exc}",
            "the proxy accepted the connection but did not answer CONNECT: check that it is an "
            "HTTP proxy",
        )
    sock.close()
    code = status.split(" ")[1] if len(status.split(" ")) > 1 else ""
    if code == "200":
        return Check(what, True, status)
    if code in ("401", "407"):
        fix = "the proxy wants credentials: check the user and password in [cloud] proxy"
    elif code == "403":
        fix = f"the proxy must allow CONNECT to {target.endpoint} (its ACL or allowed ports)"
    elif code.startswith("5"):
        fix = (
            f"the proxy could not reach {target.endpoint}: its own DNS and firewall must let it "
            "reach the cloud"
        )
    else:
        fix = "the proxy's answer is not HTTP: check [cloud] proxy"
    return Check(what, False, status or "(empty answer)", fix)


def tls_check(settings: Settings, target: Target, timeout_s: float) -> Check:
    what = f"TLS {target}"
    ca = settings.cloud.ca_bundle
    trusted = f"[cloud] ca_bundle ({ca})" if ca else "the system's trust store"
    try:
        context = ssl_context(ca)
    except CloudError as exc:
        return Check(what, False, exc.message, exc.hint)
    endpoint = target.endpoint
    try:
        if settings.cloud.proxy is not None:
            raw, status = _proxy_connect(str(settings.cloud.proxy), endpoint, timeout_s)
            if status.split(" ")[1:2] != ["200"]:
                return Check(what, None, f"not checked: the proxy answered {status}")
        else:
            raw = _connect(endpoint, timeout_s)
        with context.wrap_socket(raw, server_hostname=endpoint.host) as tls:
            certificate = tls.getpeercert()
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or str(exc)
        fix = (
            f"the certificate of {endpoint} is not signed by a CA in {trusted}: set [cloud] "
            "ca_bundle to the cloud's CA certificate"
        )
        if "expired" in reason or "not yet valid" in reason:
            fix = "check the gateway's date and time (timedatectl), then the cloud's certificate"
        return Check(what, False, f"not verified: {reason}", fix)
    except (ssl.SSLError, OSError) as exc:
        return Check(
            what,
            False,
            f"handshake failed: {exc}",
            f"{endpoint} does not speak TLS 1.2+ as expected: check the URL and port, and that "
            "no middlebox intercepts HTTPS",
        )
    assert certificate is not None
    not_after = datetime.datetime.fromtimestamp(
        ssl.cert_time_to_seconds(str(certificate["notAfter"])), datetime.UTC
    )
    days = (not_after - datetime.datetime.now(datetime.UTC)).days
    issuer = _name(certificate.get("issuer", ()))
    found = f"{version}, verified against {trusted}, issued by {issuer}, valid until " + (
        f"{not_after:%Y-%m-%d} ({days} days)"
    )
    if days < EXPIRY_WARNING_DAYS:
        return Check(
            what,
            False,
            found,
            "the cloud's certificate expires soon: tell the cloud's operator",
        )
    return Check(what, True, found)


def _name(rdns: object) -> str:
    """``((("commonName", "x"),), ...)`` → ``x`` (the common name, or the organisation)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(TypeError, ValueError):
        for rdn in rdns:  # type: ignore[attr-defined]
            for key, value in rdn:
                fields[key] = value
    return fields.get("commonName") or fields.get("organizationName") or "?"


def cloud_checks(settings: Settings, state: CloudState, timeout_s: float) -> Iterator[Check]:
    """DNS, then TCP, then the proxy's answer, then TLS: each layer for every endpoint."""
    found, unknown = targets(settings, state)
    proxy = settings.cloud.proxy
    if proxy is not None:
        via = Endpoint.of(str(proxy))
        dns = [(via.host, via.port, "HTTP proxy")]
    else:
        dns = [(t.endpoint.host, t.endpoint.port, ", ".join(t.purposes)) for t in found]
    unresolved = set()
    for host, port, role in dns:
        check = dns_check(host, port, role, timeout_s)
        yield check
        if not check.ok:
            unresolved.add(host)
    if unknown:
        yield Check(
            f"cloud hosts ({', '.join(unknown)})",
            None,
            "known after the first bootstrap: run `panelfast connect`, then doctor again",
        )
    reached = []
    if proxy is not None:
        if via.host in unresolved:
            check = Check(f"TCP {via} (HTTP proxy)", None, "not checked: not resolved")
        else:
            check = tcp_check(via, "HTTP proxy", timeout_s, proxy=True)
        yield check
        if check.ok:
            for target in found:
                check = proxy_check(str(proxy), target, timeout_s)
                yield check
                if check.ok:
                    reached.append(target)
    else:
        yield Check("proxy", None, "none configured ([cloud] proxy): HTTPS goes direct")
        for target in found:
            role = ", ".join(target.purposes)
            if target.endpoint.host in unresolved:
                check = Check(f"TCP {target}", None, "not checked: not resolved")
            else:
                check = tcp_check(target.endpoint, role, timeout_s, proxy=False)
            yield check
            if check.ok:
                reached.append(target)
    for target in found:
        if target in reached:
            yield tls_check(settings, target, timeout_s)
        else:
            yield Check(f"TLS {target}", None, "not checked: not reached (see above)")
