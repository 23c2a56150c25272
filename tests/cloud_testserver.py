"""A small, real cloud for the gateway's tests: HTTPS on loopback, following protocol v1.

Three TLS servers (bootstrap, hub, upload) on their own ports share one
enrolment list and store. Bootstrap really checks the HMAC claim signature and
the 300 s skew against this cloud's clock (which a test may set off from the
machine's); the hub really checks bearer tokens, their expiry and enrolment;
data batches are really decoded (zstd + MessagePack) and numbered.

Tests inject faults (``fail_next``) and read what arrived (``requests``).
This is not the reference cloud (``panelfast.refcloud``): it is just enough
protocol for the client's tests, with the hooks those need.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack
import trustme
import zstandard

SKEW_LIMIT_S = 300
MAX_HUB_BODY = 256_000


@dataclass
class Recorded:
    service: str
    method: str
    path: str
    at: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    service: str
    path_contains: str
    status: int
    count: int
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass
class Token:
    serial: str
    device_id: str
    expires_at: float


class Reply(Exception):
    """Raised by a route to answer with a status and a JSON body (or none)."""

    def __init__(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.raw = raw


def error(status: int, code: str, message: str = "", **extra: Any) -> Reply:
    return Reply(status, {"error": code, "message": message or code, **extra})


class _TLSServer(ThreadingHTTPServer):
    # Closing the server waits for every request's thread: none outlives the test.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, cloud: TestCloud, service: str, context: ssl.SSLContext) -> None:
        self.cloud = cloud
        self.service = service
        self.context = context
        self.connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that refused our certificate or hung up is part of the tests.
        pass

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        with self.cloud.lock:
            self.connections.add(sock)
        # The handshake runs in the request's thread: a client that gives up
        # (wrong CA) must not stall the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def shutdown_request(self, request: Any) -> None:
        with self.cloud.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def hang_up(self) -> None:
        """End every connection a client kept open: their threads end with them."""
        with self.cloud.lock:
            connections = list(self.connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        cloud = self.server.cloud
        try:
            cloud.route(self.server.service, method, self.path, dict(self.headers.items()), body)
        except Reply as reply:
            self._answer(reply)
        except Exception as exc:  # a bug in this server must show in the test
            self._answer(error(500, "internal", repr(exc)))

    def _answer(self, reply: Reply) -> None:
        if reply.raw is not None:
            data = reply.raw
        elif reply.body is not None:
            data = json.dumps(reply.body).encode()
        else:
            data = b""
        self.send_response(reply.status)
        if data and reply.raw is None:
            self.send_header("Content-Type", "application/json")
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


class TestCloud:
    """See the module docstring."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        ca: trustme.CA,
        *,
        enrolled: dict[str, str],
        skew_s: float = 0.0,
        token_ttl_s: float = 3600.0,
        ntp_server: str | None = None,
    ) -> None:
        self.enrolled = dict(enrolled)  # serial → claim key hex
        self.skew_s = skew_s
        self.token_ttl_s = token_ttl_s
        self.ntp_server = ntp_server
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.tokens: dict[str, Token] = {}
        self.devices: dict[str, str] = {}  # serial → device id
        self.acked_seq: dict[str, int] = {}
        self.batches: dict[tuple[str, int], bytes] = {}
        self.topologies: dict[str, bytes] = {}
        self.config: dict[str, Any] | None = None
        self.config_reports: list[dict[str, Any]] = []
        self.alarm_events: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, dict[str, Any]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.outputs: list[dict[str, Any]] = []
        self.disconnects: list[str] = []
        self.uploads: dict[str, dict[str, Any]] = {}
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.servers = {
            name: _TLSServer(self, name, context) for name in ("bootstrap", "hub", "upload")
        }
        self.threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in self.servers.values()
        ]
        for thread in self.threads:
            thread.start()

    def url(self, service: str) -> str:
        return f"https://127.0.0.1:{self.servers[service].server_address[1]}"

    def port(self, service: str) -> int:
        return int(self.servers[service].server_address[1])

    def close(self) -> None:
        self.closing.set()  # long polls answer now
        for server in self.servers.values():
            server.shutdown()
            server.hang_up()
            server.server_close()
        for thread in self.threads:
            thread.join()

    # -- test hooks

    def now(self) -> float:
        return time.time() + self.skew_s

    def fail_next(
        self,
        service: str,
        path_contains: str,
        status: int,
        *,
        count: int = 1,
        headers: dict[str, str] | None = None,
        code: str = "",
    ) -> None:
        with self.lock:
            self.faults.append(Fault(service, path_contains, status, count, headers or {}, code))

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = 0.0

    def seen(self, service: str, path_contains: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.service == service and path_contains in r.path]

    # -- routing

    def route(
        self, service: str, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> None:
        url = urllib.parse.urlsplit(target)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        with self.lock:
            self.requests.append(Recorded(service, method, path, time.monotonic(), headers, body))
            for fault in self.faults:
                if fault.service == service and fault.path_contains in path and fault.count > 0:
                    fault.count -= 1
                    code = fault.error or {429: "rate_limited", 503: "unavailable"}.get(
                        fault.status, "injected"
                    )
                    raise Reply(fault.status, {"error": code, "message": "injected"}, fault.headers)
        if service == "bootstrap":
            if (method, path) != ("POST", "/v1/bootstrap"):
                raise error(404, "not_found")
            self.bootstrap(headers, body)
        parts = path.strip("/").split("/")
        if service == "upload" and method == "PUT" and parts[:1] == ["put"] and len(parts) == 2:
            self.upload_put(parts[1], query, body)
        if len(parts) < 4 or parts[:2] != ["v1", "devices"]:
            raise error(404, "not_found")
        device_id, rest = parts[2], parts[3:]
        self.authorise(headers, device_id)
        if service == "hub":
            self.hub(method, device_id, rest, query, headers, body)
        self.upload(method, device_id, rest, body)

    # -- §3 bootstrap

    def bootstrap(self, headers: dict[str, str], body: bytes) -> None:
        serial = headers.get("X-PF-Serial", "")
        stamp = headers.get("X-PF-Timestamp", "")
        signature = headers.get("X-PF-Signature", "")
        try:
            doc = json.loads(body)
        except ValueError:
            raise error(400, "invalid_payload", "body is not JSON") from None
        if not isinstance(doc, dict) or not {"serial", "model", "firmware", "mac"} <= doc.keys():
            raise error(400, "invalid_payload", "missing field")
        if not stamp.lstrip("-").isdigit():
            raise error(400, "invalid_payload", "bad timestamp")
        key = self.enrolled.get(serial)
        if key is None:
            raise error(403, "device_not_registered")
        expected = hmac.new(
            bytes.fromhex(key), f"{serial}\n{stamp}".encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise error(401, "bad_credentials", "signature")
        if abs(self.now() - int(stamp)) > SKEW_LIMIT_S:
            raise error(401, "bad_credentials", "clock skew")
        with self.lock:
            device_id = self.devices.setdefault(serial, "d-" + secrets.token_hex(6))
            token = secrets.token_urlsafe(24)
            expires = self.now() + self.token_ttl_s
            self.tokens[token] = Token(serial, device_id, expires)
            seq = self.acked_seq.get(device_id, 0)
        raise Reply(
            200,
            {
                "device_id": device_id,
                "hub_url": self.url("hub"),
                "upload_url": self.url("upload"),
                "token": token,
                "token_expires_at": int(expires),
                "ntp_server": self.ntp_server,
                "data_seq": seq,
            },
        )

    def authorise(self, headers: dict[str, str], device_id: str) -> None:
        auth = headers.get("Authorization", "")
        token = (
            self.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        )
        if token is None or token.device_id != device_id:
            raise error(401, "bad_credentials", "unknown token")
        if token.expires_at <= self.now():
            raise error(401, "token_expired")
        if token.serial not in self.enrolled:
            raise error(403, "device_not_registered")

    # -- hub

    def hub(
        self,
        method: str,
        device_id: str,
        rest: list[str],
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        if len(body) > MAX_HUB_BODY:
            raise error(413, "payload_too_large")
        route = (method, "/".join(rest))
        if route == ("PUT", "topology"):
            if headers.get("Content-Encoding") == "zstd":
                body = zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 24)
            raise Reply(202, {"topology_version": self.topology_version(device_id, body)})
        if route == ("GET", "config"):
            self.get_config(query, headers)
        if route == ("POST", "config/report"):
            with self.lock:
                self.config_reports.append(self.json(body))
            raise Reply(204)
        if route == ("POST", "data"):
            self.post_data(device_id, headers, body)
        if route == ("POST", "alarms"):
            events = self.json(body).get("events")
            if not isinstance(events, list):
                raise error(400, "invalid_payload", "events")
            with self.lock:
                for event in events:
                    if self.alarm_events.get(event["id"], event) != event:
                        raise error(409, "conflict", "event id reused")
                    self.alarm_events[event["id"]] = event
            raise Reply(200, {"ack": len(events)})
        if route == ("GET", "commands"):
            wait = float(query.get("wait", ["0"])[0])
            deadline = time.monotonic() + wait
            while True:
                with self.lock:
                    pending = [c for cid, c in self.commands.items() if cid not in self.results]
                if pending or time.monotonic() >= deadline or self.closing.is_set():
                    raise Reply(200, {"commands": pending})
                self.closing.wait(0.02)
        if method == "POST" and len(rest) == 3 and rest[0] == "commands" and rest[2] == "result":
            doc = self.json(body)
            with self.lock:
                if rest[1] not in self.commands:
                    raise error(404, "not_found", "unknown command")
                if doc.get("status") not in ("done", "rejected", "failed"):
                    raise error(400, "invalid_payload", "status")
                self.results[rest[1]] = doc
            raise Reply(204)
        if route == ("POST", "outputs"):
            with self.lock:
                self.outputs.extend(self.json(body)["states"])
            raise Reply(204)
        if route == ("POST", "disconnect"):
            with self.lock:
                self.disconnects.append(device_id)
            raise Reply(204)
        raise error(404, "not_found")

    @staticmethod
    def json(body: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(body)
        except ValueError:
            raise error(400, "invalid_payload", "not JSON") from None
        if not isinstance(doc, dict):
            raise error(400, "invalid_payload", "not an object")
        return doc

    def topology_version(self, device_id: str, body: bytes) -> str:
        doc = self.json(body)
        if doc.get("schema") != "panelfast.topology/1" or not isinstance(doc.get("devices"), list):
            raise error(400, "invalid_payload", "not a topology")
        doc.pop("published_at", None)
        canonical = json.dumps(doc, sort_keys=True).encode()
        with self.lock:
            self.topologies[device_id] = canonical
        return hashlib.sha256(canonical).hexdigest()[:16]

    def get_config(self, query: dict[str, list[str]], headers: dict[str, str]) -> None:
        wait = float(query.get("wait", ["0"])[0])
        have = headers.get("If-None-Match", "").strip('"') or None
        deadline = time.monotonic() + wait
        while True:
            with self.lock:
                config = self.config
            if config is not None and config["version"] != have:
                raise Reply(200, config, {"ETag": f'"{config["version"]}"'})
            if time.monotonic() >= deadline or self.closing.is_set():
                raise Reply(204 if config is None else 304)
            self.closing.wait(0.02)

    def post_data(self, device_id: str, headers: dict[str, str], body: bytes) -> None:
        if headers.get("Content-Type") != "application/vnd.panelfast.batch+msgpack":
            raise error(400, "invalid_payload", "content type")
        if headers.get("Content-Encoding") != "zstd":
            raise error(400, "invalid_payload", "content encoding")
        try:
            raw = zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 24)
            batch = msgpack.unpackb(raw)
            seq = batch["seq"]
        except Exception:
            raise error(400, "invalid_payload", "not a zstd MessagePack batch") from None
        with self.lock:
            acked = self.acked_seq.get(device_id, 0)
            if seq <= acked:
                if self.batches.get((device_id, seq)) == raw:
                    raise Reply(200, {"ack": seq, "duplicate": True})
                raise error(409, "conflict", "seq taken", expected=acked + 1)
            if seq != acked + 1:
                raise error(409, "conflict", "seq ahead", expected=acked + 1)
            self.batches[(device_id, seq)] = raw
            self.acked_seq[device_id] = seq
        raise Reply(200, {"ack": seq})

    # -- §10 upload service

    def upload(self, method: str, device_id: str, rest: list[str], body: bytes) -> None:
        if (method, rest) == ("POST", ["uploads"]):
            doc = self.json(body)
            upload_id = "u-" + secrets.token_hex(4)
            secret = secrets.token_urlsafe(12)
            with self.lock:
                self.uploads[upload_id] = {**doc, "device_id": device_id, "secret": secret}
            put_url = f"{self.url('upload')}/put/{upload_id}?sig={secret}"
            raise Reply(201, {"upload_id": upload_id, "put_url": put_url})
        if method == "POST" and len(rest) == 3 and rest[0] == "uploads" and rest[2] == "complete":
            with self.lock:
                upload = self.uploads.get(rest[1])
            if upload is None or upload["device_id"] != device_id:
                raise error(404, "not_found", "unknown upload")
            data = upload.get("data")
            if (
                data is None
                or len(data) != upload["size"]
                or hashlib.sha256(data).hexdigest() != upload["sha256"]
            ):
                raise error(400, "invalid_payload", "size or digest mismatch")
            if upload["kind"] == "topology":
                raise Reply(200, {"topology_version": self.topology_version(device_id, data)})
            raise Reply(200, {})
        raise error(404, "not_found")

    def upload_put(self, upload_id: str, query: dict[str, list[str]], body: bytes) -> None:
        with self.lock:
            upload = self.uploads.get(upload_id)
            if upload is None or query.get("sig") != [upload["secret"]]:
                raise error(404, "not_found", "unknown upload")
            upload["data"] = body
        raise Reply(201)
