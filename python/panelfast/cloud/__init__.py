"""The gateway's cloud connection (cloud protocol v1, §1–§4, §10, §11).

- :class:`CloudSession`: Connect / Disconnect (persisted), the Connection
  status and diagnostics with a hint, time synchronisation, and
  :attr:`CloudSession.hub`, a :class:`HubClient` with one typed method per
  hub and upload call.
- :class:`Identity`: the Panel Server Identification.
- :func:`firewall_rules`: every host and port the site's firewall must allow.

Failures raise :class:`~panelfast.exceptions.CloudError` subclasses.
"""

import logging

from panelfast.cloud._firewall import FirewallRule, firewall_rules
from panelfast.cloud._hub import (
    Command,
    ConfigAnswer,
    DataAck,
    HubClient,
    TopologyAccepted,
    UploadResult,
)
from panelfast.cloud._identity import Identity, mask_secret
from panelfast.cloud._session import CloudSession
from panelfast.cloud._state import CloudState, StateStore
from panelfast.cloud._status import CloudStatus, ConnectionStatus, Diagnostic
from panelfast.cloud._timesync import Clock, SyncStatus, TimeSync, parse_ntp_server
from panelfast.cloud._transport import Endpoint, RetryPolicy, ssl_context

# The application (gateway, CLI) decides where log records go; none by default.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Clock",
    "CloudSession",
    "CloudState",
    "CloudStatus",
    "Command",
    "ConfigAnswer",
    "ConnectionStatus",
    "DataAck",
    "Diagnostic",
    "Endpoint",
    "FirewallRule",
    "HubClient",
    "Identity",
    "RetryPolicy",
    "StateStore",
    "SyncStatus",
    "TimeSync",
    "TopologyAccepted",
    "UploadResult",
    "firewall_rules",
    "mask_secret",
    "parse_ntp_server",
    "ssl_context",
]
