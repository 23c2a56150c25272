"""The register types of device models and their facts, from the Rust core.

The core defines each type once (``rust/datatype.rs``): how many registers it
takes, whether it is an integer, the raw pattern that means "not available".
Everything on the Python side that needs a type list or a type's width reads
it here: the model loader, the gateway, ``panelfast modbus read``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

from panelfast._native import REGISTER_TYPES, RegisterType

__all__ = [
    "TYPES",
    "DataType",
    "RegisterType",
    "facts",
    "is_exact",
    "register_count",
]

#: How a measurement's registers encode its value. Spelled out for the type
#: checker; checked against the core's list when this module loads.
DataType = Literal[
    "INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64",
    "FLOAT32", "FLOAT64", "BITMAP", "ASCII", "DATETIME",
]  # fmt: skip

#: Every type name, in the order model files and their documentation list them.
TYPES: tuple[DataType, ...] = get_args(DataType)

_FACTS: Mapping[str, RegisterType] = MappingProxyType({t.name: t for t in REGISTER_TYPES})

if tuple(_FACTS) != TYPES:
    # Only a Python package paired with another build of the core gets here.
    raise ImportError(
        f"panelfast's register types {TYPES} differ from its Rust core's {tuple(_FACTS)}: "
        "reinstall panelfast"
    )


def facts(data_type: DataType) -> RegisterType:
    """A type's facts: ``registers``, ``integer``, ``exact``, ``signed``, ``sentinel``."""
    return _FACTS[data_type]


def register_count(data_type: DataType, length: int = 0) -> int:
    """Registers a value occupies: the type's width, or ``length`` for ASCII."""
    width = _FACTS[data_type].registers
    return width if width else length


def is_exact(data_type: DataType, scale: float = 1.0, offset: float = 0.0) -> bool:
    """Whether a measurement's values are exact integers (carried as int64, never
    rounded through a float): unscaled integer types, and DATETIME (ms since the epoch),
    which takes no scale."""
    return _FACTS[data_type].exact and (data_type == "DATETIME" or (scale == 1 and offset == 0))
