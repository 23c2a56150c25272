"""The register types' facts come from the Rust core, and agree with what it decodes."""

from __future__ import annotations

from panelfast import register_types
from panelfast._native import REGISTER_TYPES, Field
from panelfast.register_types import TYPES, facts, is_exact, register_count


def test_the_python_type_list_is_the_cores() -> None:
    assert tuple(t.name for t in REGISTER_TYPES) == TYPES
    assert len(TYPES) == 11
    assert register_count("FLOAT32") == 2
    assert register_count("DATETIME") == 4
    assert register_count("ASCII", 20) == 20
    assert facts("INT16").sentinel == 0x8000
    assert facts("UINT32").sentinel == 0xFFFF_FFFF
    assert facts("BITMAP").sentinel is None
    assert facts("INT64").signed
    assert not facts("UINT64").signed


def test_exactness_is_what_the_decoder_does() -> None:
    for name in TYPES:
        length = 2 if name == "ASCII" else 0
        for scale in (1.0, 0.1):
            if scale != 1.0 and name in ("ASCII", "DATETIME"):
                continue  # they take no scale
            field = Field(0, name, scale=scale, length=length)
            assert is_exact(name, scale) == field.exact, (name, scale)
            assert register_count(name, length) == field.registers, name


def test_the_module_is_what_models_use() -> None:
    from panelfast.models import DataType

    assert DataType is register_types.DataType
