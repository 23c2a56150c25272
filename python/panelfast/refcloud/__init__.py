"""The reference cloud: a strict implementation of cloud protocol v1 with an operator API.

- :class:`RefCloud` runs one in-process (HTTPS on 127.0.0.1, its own CA) and
  exposes the operator's functions (enrol, set_config, queue_command,
  inject_fault, what was received);
- :class:`RefCloudProcess` runs ``panelfast refcloud serve`` as a subprocess and
  :class:`OperatorClient` drives any running one through its state folder.
"""

from panelfast.refcloud.client import OperatorClient, RefCloudProcess
from panelfast.refcloud.server import RefCloud
from panelfast.refcloud.state import Settings

__all__ = ["OperatorClient", "RefCloud", "RefCloudProcess", "Settings"]
