"""The reference cloud: a strict implementation of cloud protocol v1 with an operator API.

- :class:`RefCloud` runs one in-process (HTTPS on 127.0.0.1, its own CA) and
  exposes the operator's functions (enrol, set_config, queue_command,
  inject_fault, what was received);
- :class:`RefCloudProcess` runs ``panelfast refcloud serve`` as a subprocess and
  :class:`OperatorClient` drives any running one through its state folder.

In a test::

    with RefCloud(tmp_path / "cloud") as cloud:       # or: async with
        key = cloud.enrol("PS-0042-7A19")             # the claim key (hex)
        # gateway config: bootstrap_url=cloud.bootstrap_url, ca_bundle=cloud.ca_path
        ...
        cloud.generate_config("PS-0042-7A19", period_s=60)   # from the published topology
        cloud.queue_command("PS-0042-7A19", {"type": "upload_logs"})
        cloud.inject_fault("unavailable", "data", count=3)   # or rate_limited, delay, drop
        cloud.sample_counts("PS-0042-7A19")  # Counter{("mb-1/ActivePowerTotal", t_ms): n}

From a shell: ``panelfast refcloud serve --state DIR --port 8443``, then
``panelfast refcloud enrol|config|command|inspect|fault ... --state DIR``.
"""

import importlib.util

# The reference cloud's web stack is the `refcloud` extra, not a dependency of the
# gateway: say so, rather than fail on an import deep inside.
for _module in ("fastapi", "uvicorn", "cryptography", "jinja2", "msgpack"):
    if importlib.util.find_spec(_module) is None:
        raise ModuleNotFoundError(
            f"the reference cloud needs {_module}, from the refcloud extra: "
            "pip install 'panelfast[refcloud]'",
            name=_module,
        )

from panelfast.refcloud.client import OperatorClient, RefCloudProcess  # noqa: E402
from panelfast.refcloud.server import RefCloud  # noqa: E402
from panelfast.refcloud.state import Settings  # noqa: E402

__all__ = ["OperatorClient", "RefCloud", "RefCloudProcess", "Settings"]
