"""decode_mixed_5000: a realistic 5,000-field register map, decoded per poll.

The map mixes what meters publish: FLOAT32 in ABCD and CDAB order, INT64
energies, scaled UINT16/INT16, UINT32, read as blocks of up to 125 registers.
panelfast decodes the whole set of blocks in one call; the baselines are
pymodbus's ``convert_from_registers`` field by field (as users write it) and
the best vectorised numpy decoder we could write, both on the same registers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from pymodbus.client.mixin import ModbusClientMixin

from benches._harness import Record, median_seconds, record
from panelfast import Field, RegisterLayout

FIELDS = 5000
BLOCK = 125


@dataclass(frozen=True)
class MixedMap:
    fields: list[Field]
    specs: list[tuple[int, str, str, float]]  # offset, type, order, scale
    registers: np.ndarray  # all registers, from address 0
    blocks: list[tuple[int, np.ndarray]]


def mixed_map(seed: int = 7) -> MixedMap:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(
        ["f32_abcd", "f32_cdab", "i64", "u16_scaled", "i16_scaled", "u32"],
        size=FIELDS,
        p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.1],
    )
    specs: list[tuple[int, str, str, float]] = []
    words: list[int] = []
    for kind in kinds:
        at = len(words)
        if kind.startswith("f32"):
            order = "ABCD" if kind == "f32_abcd" else "CDAB"
            hi, lo = struct.unpack(">HH", struct.pack(">f", rng.normal(230, 20)))
            words += [hi, lo] if order == "ABCD" else [lo, hi]
            specs.append((at, "FLOAT32", order, 1.0))
        elif kind == "i64":
            words += list(struct.unpack(">HHHH", struct.pack(">q", int(rng.integers(0, 2**40)))))
            specs.append((at, "INT64", "ABCD", 1.0))
        elif kind == "u16_scaled":
            words.append(int(rng.integers(0, 60000)))
            specs.append((at, "UINT16", "ABCD", 0.01))
        elif kind == "i16_scaled":
            words.append(struct.unpack(">H", struct.pack(">h", int(rng.integers(-3000, 3000))))[0])
            specs.append((at, "INT16", "ABCD", 0.1))
        else:
            words += list(struct.unpack(">HH", struct.pack(">I", int(rng.integers(0, 2**31)))))
            specs.append((at, "UINT32", "ABCD", 1.0))
    registers = np.array(words, np.uint16)
    # Cut into reads of at most 125 registers that never split a field.
    blocks: list[tuple[int, np.ndarray]] = []
    start = 0
    for at, type_, _, _ in specs:
        width = {"FLOAT32": 2, "INT64": 4, "UINT16": 1, "INT16": 1, "UINT32": 2}[type_]
        if at + width - start > BLOCK:
            blocks.append((start, registers[start:at].copy()))
            start = at
    blocks.append((start, registers[start:].copy()))
    fields = [Field(at, t, o, scale=s) for at, t, o, s in specs]  # type: ignore[arg-type]
    return MixedMap(fields, specs, registers, blocks)


class NumpyDecoder:
    """Vectorised decoding with index arrays precomputed per type, as a numpy expert would."""

    def __init__(self, specs: list[tuple[int, str, str, float]]) -> None:
        def idx(pred: object) -> tuple[np.ndarray, np.ndarray]:
            pairs = [(i, at) for i, (at, t, o, _) in enumerate(specs) if (t, o) == pred]
            return np.array([p[0] for p in pairs], np.intp), np.array(
                [p[1] for p in pairs], np.intp
            )

        self.n = len(specs)
        self.f32_abcd = idx(("FLOAT32", "ABCD"))
        self.f32_cdab = idx(("FLOAT32", "CDAB"))
        self.i64 = idx(("INT64", "ABCD"))
        self.u32 = idx(("UINT32", "ABCD"))
        self.u16 = idx(("UINT16", "ABCD"))
        self.i16 = idx(("INT16", "ABCD"))
        self.u16_scale = np.array([specs[i][3] for i in self.u16[0]])
        self.i16_scale = np.array([specs[i][3] for i in self.i16[0]])

    def decode(self, blocks: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        regs = np.concatenate([b for _, b in blocks]).astype(np.uint32)
        values = np.full(self.n, np.nan)
        valid = np.zeros(self.n, bool)

        for (fi, at), swap in ((self.f32_abcd, False), (self.f32_cdab, True)):
            hi, lo = (regs[at + 1], regs[at]) if swap else (regs[at], regs[at + 1])
            raw = (hi << 16) | lo
            v = raw.view(np.float32).astype(np.float64)
            ok = ~np.isnan(v)
            values[fi] = np.where(ok, v, np.nan)
            valid[fi] = ok
        fi, at = self.i64
        r = regs.astype(np.uint64)
        raw64 = (r[at] << 48) | (r[at + 1] << 32) | (r[at + 2] << 16) | r[at + 3]
        ok = raw64 != 0x8000_0000_0000_0000
        values[fi] = raw64.view(np.int64)
        valid[fi] = ok
        fi, at = self.u32
        raw = (regs[at] << 16) | regs[at + 1]
        values[fi] = raw
        valid[fi] = raw != 0xFFFF_FFFF
        fi, at = self.u16
        values[fi] = regs[at] * self.u16_scale
        valid[fi] = regs[at] != 0xFFFF
        fi, at = self.i16
        values[fi] = regs[at].astype(np.uint16).view(np.int16) * self.i16_scale
        valid[fi] = regs[at] != 0x8000
        return values, valid


def pymodbus_decode(specs: list[tuple[int, str, str, float]], registers: list[int]) -> list[float]:
    """Field by field, as pymodbus users write it."""
    convert = ModbusClientMixin.convert_from_registers
    types = ModbusClientMixin.DATATYPE
    out = []
    for at, type_, order, scale in specs:
        dt = types[type_]
        n = dt.value[1]
        value = convert(
            registers[at : at + n], dt, word_order="big" if order == "ABCD" else "little"
        )
        out.append(float(value) * scale)  # type: ignore[arg-type]
    return out


def run() -> list[Record]:
    m = mixed_map()
    layout = RegisterLayout(m.fields)
    numpy_decoder = NumpyDecoder(m.specs)

    # The three decoders agree before anything is timed.
    ours = layout.decode(m.blocks)
    np_values, np_valid = numpy_decoder.decode(m.blocks)
    reg_list = m.registers.tolist()
    pm_values = pymodbus_decode(m.specs, reg_list)
    assert ours.valid.all()
    assert np_valid.all()
    np.testing.assert_allclose(ours.values, np_values, rtol=1e-12)
    np.testing.assert_allclose(ours.values, pm_values, rtol=1e-12)

    t_ours = median_seconds(lambda: layout.decode(m.blocks), repeat=2000)
    t_numpy = median_seconds(lambda: numpy_decoder.decode(m.blocks), repeat=500)
    t_pymodbus = median_seconds(lambda: pymodbus_decode(m.specs, reg_list), repeat=15)
    unit = "values/s"
    return [
        record("decode_mixed_5000", unit, FIELDS / t_ours, "pymodbus convert_from_registers",
               FIELDS / t_pymodbus, "higher"),
        record("decode_mixed_5000_vs_numpy", unit, FIELDS / t_ours, "vectorised numpy",
               FIELDS / t_numpy, "higher"),
    ]  # fmt: skip
