"""Helpers of the web pages' tests: a real ``panelfast run`` serving them, and an HTTPS client.

The gateway is the embedded system's (reference cloud on loopback, device
simulator) with ``[web] listen`` on a free loopback port; the daemon runs as
its own process. Its web certificate is the self-signed one it makes in its
storage folder: clients trust exactly that certificate (the browser by its
key, see ``browser_support``; ``https_client`` by the file).
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from cloud_support import free_port
from panelfast.embedded import EmbeddedSystem
from reliability_support import GatewayProcess, wait_until

PASSWORD = "correct horse battery"


def enable_web(system: EmbeddedSystem, port: int, extra: str = "") -> None:
    """Turn the web pages on in the system's configuration file."""
    text = system.config_path.read_text(encoding="utf-8")
    system.config_path.write_text(
        text + f'\n[web]\nlisten = "127.0.0.1:{port}"\n{extra}', encoding="utf-8"
    )


def set_password(config_path: Path, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    """``panelfast web set-password --stdin``, as a script would."""
    return subprocess.run(
        [sys.executable, "-m", "panelfast", "web", "set-password", "--stdin", "--config",
         str(config_path)],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: Every Set-Cookie header (``headers`` keeps one of each name).
    set_cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class HttpsClient:
    """A cookie-keeping HTTPS client of the web listener, trusting its certificate only."""

    port: int
    certificate: Path
    cookies: dict[str, str] = field(default_factory=dict)

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certificate))
        context.check_hostname = False  # the certificate itself is pinned: names do not matter
        return context

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> Answer:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.tls_context(), timeout=timeout
        )
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            set_cookies = []
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    set_cookies.append(value)
                    pair = value.split(";", 1)[0]
                    key, _, cookie = pair.partition("=")
                    if "max-age=0" in value.lower() or not cookie.strip('"'):
                        self.cookies.pop(key, None)
                    else:
                        self.cookies[key] = cookie
            headers_seen = {k.lower(): v for k, v in response.getheaders()}
            return Answer(response.status, headers_seen, data, set_cookies)
        finally:
            connection.close()

    def form(self, path: str, fields: Mapping[str, str]) -> Answer:
        body = urllib.parse.urlencode(fields).encode()
        return self.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def login_token(self) -> str:
        page = self.request("GET", "/login").text
        return page.split('name="token" value="', 1)[1].split('"', 1)[0]

    def log_in(self, user: str = "admin", password: str = PASSWORD) -> Answer:
        return self.form(
            "/login", {"token": self.login_token(), "user": user, "password": password}
        )

    def csrf(self) -> str:
        page = self.request("GET", "/settings/publication", headers={"Accept": "text/html"}).text
        return page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


@dataclass(frozen=True)
class WebTls:
    """A certificate of a test CA for 127.0.0.1, for ``[web] certificate`` and ``key``."""

    certificate: Path
    key: Path
    ca: Path

    @classmethod
    def make(cls, folder: Path) -> WebTls:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        folder.mkdir(parents=True, exist_ok=True)
        tls = cls(folder / "web-cert.pem", folder / "web-key.pem", folder / "web-ca.pem")
        issued.cert_chain_pems[0].write_to_path(str(tls.certificate))
        issued.private_key_pem.write_to_path(str(tls.key))
        tls.key.chmod(0o600)
        ca.cert_pem.write_to_path(str(tls.ca))
        return tls


@dataclass
class WebGateway:
    system: EmbeddedSystem
    daemon: GatewayProcess
    port: int
    tls: WebTls | None = None

    @property
    def certificate(self) -> Path:
        """The certificate served: the configured one, or the one the gateway made."""
        if self.tls is not None:
            return self.tls.certificate
        return self.system.settings.storage.dir / "web-tls" / "cert.pem"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self) -> HttpsClient:
        return HttpsClient(self.port, self.tls.ca if self.tls is not None else self.certificate)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "panelfast", *args, "--config", str(self.system.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def start_web_gateway(
    system: EmbeddedSystem,
    log_path: Path,
    *,
    password: str | None = PASSWORD,
    extra: str = "",
    tls: WebTls | None = None,
) -> WebGateway:
    """The daemon with its web pages on (the caller closes ``.daemon``)."""
    port = free_port()
    if tls is not None:
        extra += f'certificate = "{tls.certificate}"\nkey = "{tls.key}"\n'
    enable_web(system, port, extra)
    if password is not None:
        done = set_password(system.config_path, password)
        assert done.returncode == 0, done.stderr
    daemon = GatewayProcess(system.config_path, log_path)
    daemon.start()
    web = WebGateway(system, daemon, port, tls)

    def answers() -> bool:
        if not daemon.alive:
            return True
        try:
            return web.client().request("GET", "/login", timeout=5).status == 200
        except OSError:
            return False

    wait_until(answers, 60, "the web pages answer", every_s=0.2)
    assert daemon.alive, daemon.tail()
    return web


def wait_for_status(web: WebGateway, check: Any, what: str, timeout: float = 60) -> None:
    """Poll ``panelfast status --json`` until ``check(status)`` holds."""

    def holds() -> bool:
        answer = web.cli("status", "--json")
        return answer.returncode == 0 and bool(check(json.loads(answer.stdout)))

    wait_until(holds, timeout, what, every_s=0.3)


def elapsed(since: float) -> float:
    return time.monotonic() - since
