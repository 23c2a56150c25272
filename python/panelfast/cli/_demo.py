"""``panelfast demo``: run the gateway's main job on its embedded default.

Until the publication pipeline exists (cloud connection, simulator and
acquisition are being built), the demo runs what the core does today, end to
end on this machine: a few three-phase meters' register blocks, as a PM5560
serves them, are decoded every second, sampled into the rings, encoded into
spec §7 batches and decoded back as a cloud would.
"""

from __future__ import annotations

import math
import struct
import time

import click
import numpy as np

from panelfast import Field, RegisterLayout, SampleRing, decode_batch, encode_batches
from panelfast.cli._main import main

# PM5560 register list (zero-based, as on the wire): I1 (FLOAT32), V1-N
# (FLOAT32), P total kW (FLOAT32), active energy delivered Wh (INT64).
MEASUREMENTS = [
    ("I1", 2999, "FLOAT32"),
    ("V1N", 3027, "FLOAT32"),
    ("Ptot", 3059, "FLOAT32"),
    ("Ea", 3203, "INT64"),
]


def meter_blocks(device: int, t: float, energy_wh: int) -> list[tuple[int, np.ndarray]]:
    """The blocks a meter would answer at time ``t``: consistent V, I, P, energy."""
    volts = 230.0 + 1.5 * math.sin(t / 7 + device)
    amps = 40.0 + 10 * device + 5 * math.sin(t / 3 + device)
    kw = 3 * volts * amps * 0.95 / 1000
    low = (
        struct.unpack(">HH", struct.pack(">f", amps))
        + (0,) * 26
        + struct.unpack(">HH", struct.pack(">f", volts))
    )
    p = struct.unpack(">HH", struct.pack(">f", kw))
    e = struct.unpack(">HHHH", struct.pack(">q", energy_wh))
    return [
        (2999, np.array(low, np.uint16)),
        (3059, np.array(p, np.uint16)),
        (3203, np.array(e, np.uint16)),
    ]


@main.command()
@click.option("--devices", default=3, show_default=True, help="meters to simulate")
@click.option("--seconds", default=10, show_default=True, help="how long to sample")
def demo(devices: int, seconds: int) -> None:
    """Run the gateway's main job on its embedded default."""
    layout = RegisterLayout([Field(address, type_) for _, address, type_ in MEASUREMENTS])  # type: ignore[arg-type]
    kinds = ["int" if type_ == "INT64" else "float" for _, _, type_ in MEASUREMENTS] * devices
    ring = SampleRing(kinds, [1000] * len(kinds), capacity=3600)  # type: ignore[arg-type]
    energy = [1_000_000 * (d + 1) for d in range(devices)]
    click.echo(f"panelfast demo: {devices} meters, 1 s sampling, {seconds} s")
    next_t = math.ceil(time.time())
    for _ in range(seconds):
        time.sleep(max(0.0, next_t - time.time()))
        for d in range(devices):
            decoded = layout.decode(meter_blocks(d, next_t, energy[d]))
            energy[d] += int(decoded.values[2] * 1000 / 3600)
            n = len(MEASUREMENTS)
            ring.append(
                next_t * 1000,
                np.arange(d * n, (d + 1) * n),
                decoded.values,
                decoded.integers,
                decoded.valid,
            )
            i1, v1, p, e = (
                decoded.values[0],
                decoded.values[1],
                decoded.values[2],
                decoded.integers[3],
            )
            click.echo(
                f"  t={next_t} meter {d}: I1={i1:6.2f} A  V1N={v1:6.2f} V  P={p:6.2f} kW  Ea={e} Wh"
            )
        next_t += 1
    batches = encode_batches(ring.drain(), "demo", 1)
    for batch in batches:
        doc = decode_batch(batch.body)
        click.echo(
            f"batch seq={doc['seq']}: {batch.samples} samples in {len(batch.body)} bytes "
            f"({len(batch.body) / batch.samples:.2f} bytes/sample), "
            f"{len(doc['groups'])} group(s)"
        )
