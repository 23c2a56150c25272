"""Register decoding: every type and order, checked against independent encoders."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from panelfast import DecodeError, Field, LayoutError, RegisterLayout

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
FORMATS = {
    "INT16": ">h",
    "UINT16": ">H",
    "INT32": ">i",
    "UINT32": ">I",
    "INT64": ">q",
    "UINT64": ">Q",
    "FLOAT32": ">f",
    "FLOAT64": ">d",
}
WIDTH = {t: struct.calcsize(f) // 2 for t, f in FORMATS.items()} | {"BITMAP": 1, "DATETIME": 4}


def to_registers(value: float | int, type_: str, order: str) -> list[int]:
    """Encode with the standard library: big-endian bytes, then reorder."""
    raw = struct.pack(FORMATS[type_], value)
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    if order in ("CDAB", "DCBA"):
        words = words[::-1]
    return [int.from_bytes(w, "big") for w in words]


def decode_one(field: Field, registers: list[int]) -> tuple[float, int, bool]:
    decoded = RegisterLayout([field]).decode([(field.address, np.array(registers, np.uint16))])
    return float(decoded.values[0]), int(decoded.integers[0]), bool(decoded.valid[0])


def values_of(type_: str) -> st.SearchStrategy[float | int]:
    bits = int(type_[-2:])
    if type_.startswith("FLOAT"):
        return st.floats(allow_nan=False, width=bits)
    if type_.startswith("UINT"):
        return st.integers(0, 2**bits - 2)  # all ones is the "not available" pattern
    return st.integers(-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", list(FORMATS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_type_and_order_round_trips(type_: str, order: str, data: st.DataObject) -> None:
    value = data.draw(values_of(type_))
    if type_ == "UINT64" and value > 2**63 - 1:
        value = value >> 1  # the protocol's exact integers are int64
    got, exact, valid = decode_one(Field(100, type_, order), to_registers(value, type_, order))  # type: ignore[arg-type]
    assert valid
    if type_.startswith("FLOAT"):
        assert got == value or (got == 0 and value == 0)
        assert exact == np.iinfo(np.int64).min
    else:
        assert exact == value, "integers stay exact end to end"


@pytest.mark.parametrize(
    ("type_", "pm_type", "word_order", "order"),
    [
        ("FLOAT32", "FLOAT32", "big", "ABCD"),
        ("FLOAT32", "FLOAT32", "little", "CDAB"),
        ("INT64", "INT64", "big", "ABCD"),
        ("INT64", "INT64", "little", "CDAB"),
        ("UINT32", "UINT32", "little", "CDAB"),
        ("FLOAT64", "FLOAT64", "big", "ABCD"),
    ],
)
def test_agrees_with_pymodbus(type_: str, pm_type: str, word_order: str, order: str) -> None:
    dt = ModbusClientMixin.DATATYPE[pm_type]
    for value in (1.5, 230.25, -1234.0, 7e9) if "FLOAT" in type_ else (1, 123456789, -5, 2**40):
        if type_ == "UINT32" and (value < 0 or value > 2**32 - 2):
            continue
        regs = ModbusClientMixin.convert_to_registers(value, dt, word_order=word_order)  # type: ignore[arg-type]
        got, exact, _ = decode_one(Field(0, type_, order), regs)  # type: ignore[arg-type]
        expected = ModbusClientMixin.convert_from_registers(regs, dt, word_order=word_order)  # type: ignore[arg-type]
        assert (got if "FLOAT" in type_ else exact) == pytest.approx(expected, rel=1e-7)


def test_sentinels_decode_as_not_available() -> None:
    for type_, regs in [
        ("INT16", [0x8000]),
        ("UINT16", [0xFFFF]),
        ("INT32", [0x8000, 0]),
        ("UINT32", [0xFFFF, 0xFFFF]),
        ("FLOAT32", [0xFFC0, 0]),
        ("INT64", [0x8000, 0, 0, 0]),
        ("UINT64", [0xFFFF] * 4),
    ]:
        value, _, valid = decode_one(Field(0, type_), regs)  # type: ignore[arg-type]
        assert not valid, type_
        assert math.isnan(value)
    _, exact, valid = decode_one(Field(0, "UINT16", invalid=False), [0xFFFF])
    assert valid
    assert exact == 0xFFFF
    assert not decode_one(Field(0, "UINT16", invalid=0), [0])[2]


def test_scaled_integers_become_floats() -> None:
    value, exact, valid = decode_one(Field(0, "UINT16", scale=0.01, offset=-5.0), [12345])
    assert valid
    assert value == pytest.approx(118.45)
    assert exact == np.iinfo(np.int64).min


def test_bitmap_ascii_and_datetime() -> None:
    assert decode_one(Field(0, "BITMAP", bit=3, bits=2), [0b11000])[1] == 3
    layout = RegisterLayout([Field(10, "ASCII", length=3), Field(13, "UINT16")])
    text = layout.decode_text([(10, [0x5045, 0x4D35, 0x0000, 7])])
    assert text == ["PEM5", None]
    regs = [26, (11 << 8) | 24, (3 << 8) | 39, 12_345]
    assert decode_one(Field(0, "DATETIME"), regs)[1] == 1_795_491_552_345


def test_many_fields_over_many_blocks() -> None:
    fields = [Field(1000 + 2 * i, "FLOAT32", "CDAB" if i % 2 else "ABCD") for i in range(500)]
    layout = RegisterLayout(fields)
    registers = []
    for i in range(500):
        registers += to_registers(float(i) / 4, "FLOAT32", "CDAB" if i % 2 else "ABCD")
    all_regs = np.array(registers, np.uint16)
    blocks = [(1000 + k, all_regs[k : k + 100]) for k in range(0, 1000, 100)]
    decoded = layout.decode(blocks)
    assert len(decoded) == 500
    np.testing.assert_array_equal(decoded.values, np.arange(500) / 4)
    assert decoded.valid.all()


def test_malformed_input_is_a_clear_error() -> None:
    layout = RegisterLayout([Field(10, "FLOAT32")])
    with pytest.raises(DecodeError, match=r"field 0 \(address 10, FLOAT32\).*blocks: 0\+11"):
        layout.decode([(0, np.zeros(11, np.uint16))])
    partial = layout.decode([(0, np.zeros(11, np.uint16))], partial=True)
    assert not partial.valid[0]
    with pytest.raises(DecodeError, match="not a register address"):
        layout.decode([(70000, [1, 2])])
    with pytest.raises(DecodeError, match="runs past register 65535"):
        layout.decode([(65535, [1, 2])])
    with pytest.raises(LayoutError, match="is not one of"):
        Field(0, "FLOAT33")  # type: ignore[arg-type]
    with pytest.raises(LayoutError, match="address 70000"):
        Field(70000, "INT16")
    with pytest.raises(LayoutError, match="bits"):
        Field(0, "BITMAP", bit=15, bits=2)
    with pytest.raises(OverflowError):
        layout.decode([(0, [70000] * 12)])


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 200),
    registers=st.lists(st.integers(0, 0xFFFF), max_size=64),
    types=st.lists(
        st.tuples(st.integers(0, 260), st.sampled_from([*FORMATS, "BITMAP", "DATETIME"])),
        min_size=1,
        max_size=20,
    ),
)
def test_arbitrary_registers_never_crash(
    start: int, registers: list[int], types: list[tuple[int, str]]
) -> None:
    layout = RegisterLayout([Field(a, t, "DCBA") for a, t in types])  # type: ignore[arg-type]
    block = [(start, np.array(registers, np.uint16))]
    decoded = layout.decode(block, partial=True)
    assert len(decoded) == len(types)
    assert not np.isnan(decoded.values[decoded.valid]).any()
    end = start + len(registers)
    covered = all(start <= a and a + WIDTH[t] <= end for a, t in types)
    if covered:
        layout.decode(block)
    else:
        with pytest.raises(DecodeError, match="no block holds them"):
            layout.decode(block)
