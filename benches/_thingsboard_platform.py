"""The one thing ThingsBoard's platform must answer for its IoT Gateway to send data.

Run by the ThingsBoard Gateway's own virtualenv (``make bench-peers``), with
the broker's port: ``python _thingsboard_platform.py PORT``. On connecting,
the gateway asks the platform for its session limits (the ``getSessionLimits``
RPC) and sends no telemetry until it has them. This answers as a ThingsBoard
server configured without rate limits does (its defaults: 64 KiB payloads,
100 messages in flight), so what the benchmark measures is the gateway, not a
throttle. Everything else the gateway publishes goes to the broker unanswered,
as nothing in the benchmark needs it.

Standard library and paho only: it runs in the other virtualenv.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import paho.mqtt.client as mqtt

REQUESTS = "v1/devices/me/rpc/request/+"
RESPONSES = "v1/devices/me/rpc/response/"
NO_LIMITS = {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""}
SESSION_LIMITS = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    "rateLimits": NO_LIMITS,
    "gatewayRateLimits": NO_LIMITS,
}


def main(port: int) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-platform")

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe(REQUESTS, qos=1)
        print("ready", flush=True)

    def on_message(c: mqtt.Client, _: Any, message: mqtt.MQTTMessage) -> None:
        request = json.loads(message.payload)
        if request.get("method") == "getSessionLimits":
            request_id = message.topic.rsplit("/", 1)[-1]
            c.publish(RESPONSES + request_id, json.dumps(SESSION_LIMITS), qos=1)

    client.on_connect = on_connect
    client.on_message = on_message
    signal.signal(signal.SIGTERM, lambda *_: client.disconnect())
    client.connect("127.0.0.1", port)
    client.loop_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
