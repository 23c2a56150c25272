"""panelfast under systemd: the unit file, and the notifications of a running gateway.

- :func:`render_unit` / :func:`install_unit`: the unit shipped in the wheel
  (``Type=notify``, watchdog, hardening, ``Restart=on-failure``), filled in for
  one configuration file and user (``panelfast service install``).
- :class:`Notifier`: the sd_notify protocol over ``$NOTIFY_SOCKET``.
- :class:`ServiceWatch`: readiness, earned watchdog pings and ``STATUS=``
  lines for a running :class:`~panelfast.gateway.Gateway`.
"""

from panelfast.systemd._notify import Notifier
from panelfast.systemd._unit import (
    DEFAULT_UNIT_DIR,
    UNIT_NAME,
    install_unit,
    render_unit,
    unit_template,
)
from panelfast.systemd._watch import ServiceWatch, status_line

__all__ = [
    "DEFAULT_UNIT_DIR",
    "UNIT_NAME",
    "Notifier",
    "ServiceWatch",
    "install_unit",
    "render_unit",
    "status_line",
    "unit_template",
]
