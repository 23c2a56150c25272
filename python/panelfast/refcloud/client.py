"""The operator's client of a reference cloud running elsewhere (another process).

It finds the cloud through its state folder (``server.json``, the CA bundle,
the operator token) and speaks the ``/operator`` API; the methods mirror
:class:`panelfast.refcloud.operator.Operator`. :class:`RefCloudProcess` runs
``panelfast refcloud serve`` as a subprocess, for tests that restart gateways
(or the cloud itself) around a long-lived cloud.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from panelfast.exceptions import RefCloudError
from panelfast.refcloud.server import SERVER_FILE

__all__ = ["OperatorClient", "RefCloudProcess"]


class OperatorClient:
    """The operator API of the cloud serving ``state_dir``."""

    def __init__(self, state_dir: Path, *, timeout: float = 10.0) -> None:
        self.state_dir = Path(state_dir)
        path = self.state_dir / SERVER_FILE
        try:
            self.info: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise RefCloudError(
                f"no cloud is serving {self.state_dir} ({path} is missing)"
            ) from None
        token = (self.state_dir / "operator_token").read_text().strip()
        self.ca_path = Path(self.info["ca"])
        self.bootstrap_url: str = self.info["bootstrap_url"]
        self.hub_url: str = self.info["hub_url"]
        self.upload_url: str = self.info["upload_url"]
        self._http = httpx.Client(
            base_url=self.info["operator_url"],
            verify=ssl.create_default_context(cafile=self.ca_path),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: object = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as err:
            raise RefCloudError(f"the reference cloud did not answer: {err}") from err
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise RefCloudError(f"{method} {path}: {response.status_code} {message}")
        return None if response.status_code == 204 else response.json()

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/status")
        return result

    def enrol(self, serial: str, claim_key: str | None = None) -> str:
        return str(
            self._call("POST", "/enrolments", {"serial": serial, "claim_key": claim_key})[
                "claim_key"
            ]
        )

    def de_enrol(self, serial: str) -> None:
        self._call("DELETE", f"/enrolments/{serial}")

    def enrolments(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/enrolments")
        return result

    def expire_tokens(self, serial: str | None = None) -> int:
        return int(self._call("POST", "/tokens/expire", {"serial": serial})["expired"])

    def set_config(
        self, serial: str, document: Mapping[str, Any], *, raw: bool = False, check: bool = False
    ) -> dict[str, Any]:
        body = {"document": dict(document), "raw": raw, "check": check}
        result: dict[str, Any] = self._call("POST", f"/devices/{serial}/config", body)
        return result

    def generate_config(
        self,
        serial: str,
        *,
        period_s: int,
        publisher_period_s: int | None = None,
        devices: Sequence[str] | None = None,
        alarms: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        body = {
            "period_s": period_s,
            "publisher_period_s": publisher_period_s,
            "devices": list(devices) if devices is not None else None,
            "alarms": [dict(a) for a in alarms],
        }
        result: dict[str, Any] = self._call("POST", f"/devices/{serial}/config/generate", body)
        return result

    def queue_command(
        self, serial: str, command: Mapping[str, Any], *, raw: bool = False
    ) -> dict[str, Any]:
        path = f"/devices/{serial}/commands" + ("?raw=true" if raw else "")
        result: dict[str, Any] = self._call("POST", path, dict(command))
        return result

    def inject_fault(
        self,
        kind: str,
        target: str = "*",
        count: int = 1,
        *,
        retry_after_s: int = 1,
        delay_s: float = 1.0,
    ) -> dict[str, Any]:
        body = {
            "kind": kind,
            "target": target,
            "count": count,
            "retry_after_s": retry_after_s,
            "delay_s": delay_s,
        }
        result: dict[str, Any] = self._call("POST", "/faults", body)
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def inspect(self, serial: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/devices/{serial}")
        return result

    def sample_counts(self, serial: str) -> Counter[tuple[str, int]]:
        rows = self._call("GET", f"/devices/{serial}/sample-counts")
        return Counter({(str(name), int(t)): int(n) for name, t, n in rows})

    def samples(self, serial: str) -> dict[str, list[tuple[int, float | int | None]]]:
        raw = self._call("GET", f"/devices/{serial}/samples")
        return {name: [(int(t), v) for t, v in points] for name, points in raw.items()}

    def batches(self, serial: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/devices/{serial}/batches")
        return result

    def last_seq(self, serial: str) -> int:
        return int(self.inspect(serial)["data"]["last_seq"])

    def _section(self, serial: str, name: str) -> Any:
        return self.inspect(serial)[name]

    def topology(self, serial: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._section(serial, "topology")
        return result

    def reports(self, serial: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._section(serial, "reports")
        return result

    def coverage(self, serial: str) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._section(serial, "data")["coverage"]
        return result

    def alarm_events(self, serial: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._section(serial, "alarm_events")
        return result

    def commands(self, serial: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._section(serial, "commands")
        return result

    def output_states(self, serial: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._section(serial, "output_states")
        return result

    def uploads(self, serial: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._section(serial, "uploads")
        return result

    def disconnects(self, serial: str) -> list[float]:
        return [float(t) for t in self._section(serial, "disconnects")]

    def requests(self, since: float = 0.0) -> list[tuple[float, str, str, str]]:
        """The spec requests received after ``since`` (unix s): time, service, route, path."""
        rows = self._call("GET", f"/requests?since={since}")
        return [(float(t), str(s), str(r), str(p)) for t, s, r, p in rows]

    def upload_bytes(self, upload_id: str) -> bytes:
        try:
            response = self._http.get(f"/uploads/{upload_id}")
        except httpx.HTTPError as err:
            raise RefCloudError(f"the reference cloud did not answer: {err}") from err
        if response.status_code != 200:
            raise RefCloudError(f"no bytes for upload {upload_id}: {response.status_code}")
        return response.content


class RefCloudProcess:
    """``panelfast refcloud serve`` as a subprocess over ``state_dir``.

    ``with RefCloudProcess(tmp_path) as cloud:`` gives an :class:`OperatorClient`
    as ``cloud.operator``; ``restart()`` stops and starts it on the same port.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 0,
        extra_args: Sequence[str] = (),
        timeout: float = 20.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.port = port
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._operator: OperatorClient | None = None

    @property
    def operator(self) -> OperatorClient:
        if self._operator is None:
            raise RefCloudError("the reference cloud process is not running")
        return self._operator

    def start(self) -> Self:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        server_file = self.state_dir / SERVER_FILE
        server_file.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "panelfast", "refcloud", "serve",
            "--state", str(self.state_dir), "--port", str(self.port), *self.extra_args,
        ]  # fmt: skip
        log = (self.state_dir / "serve.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)  # noqa: S603
        log.close()
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise RefCloudError(
                    f"panelfast refcloud serve exited with {self.process.returncode}; "
                    f"see {self.state_dir / 'serve.log'}"
                )
            try:
                info = json.loads(server_file.read_text())
            except (FileNotFoundError, ValueError):
                info = None
            if info is not None and info.get("pid") == self.process.pid:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RefCloudError("panelfast refcloud serve did not start in time")
            time.sleep(0.05)
        self.port = int(info["ports"]["bootstrap"])
        self._operator = OperatorClient(self.state_dir)
        return self

    def stop(self) -> None:
        if self._operator is not None:
            self._operator.close()
            self._operator = None
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
