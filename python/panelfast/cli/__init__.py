"""The ``panelfast`` command: one module per command group, all on :func:`main`.

Each ``_<topic>.py`` module adds its commands to the group defined in
``_main.py``; importing them here is what registers them.
"""

from panelfast.cli import (
    _cloud,  # noqa: F401  (registers its commands)
    _demo,  # noqa: F401  (registers its commands)
    _gateway,  # noqa: F401  (registers its commands)
    _modbus,  # noqa: F401  (registers its commands)
    _outputs,  # noqa: F401  (registers `panelfast outputs`)
    _refcloud,  # noqa: F401  (registers `panelfast refcloud`)
    _remote_config,  # noqa: F401  (registers its commands)
    _simulator,  # noqa: F401  (registers its commands)
    _topology,  # noqa: F401  (registers its commands)
)
from panelfast.cli._main import main

__all__ = ["main"]
