"""panelfast: a fast, durable energy gateway with a Rust core.

It reads meters and IO modules over Modbus, samples measurements, evaluates
alarms and publishes data and alarms to a cloud over HTTPS (see
``shared/spec/cloud-protocol.md``). The hot path runs in Rust
(``panelfast._native``); orchestration runs on asyncio.

The core's building blocks, usable on their own:

- :class:`Field` and :class:`RegisterLayout`: a device's register map,
  compiled once, decoding whole sets of read blocks into numpy arrays;
- :class:`SampleRing`: bounded per-measurement sample buffers;
- :class:`AlarmSet`: threshold / hysteresis / delay alarms, evaluated on every reading;
- :func:`encode_batches` / :func:`decode_batch`: the spec's data batches
  (MessagePack + zstd), cut to the hub's size limit.
"""

from panelfast._native import (
    DEFAULT_LEVEL,
    MAX_BODY_BYTES,
    AlarmEvent,
    AlarmSet,
    Decoded,
    EncodedBatch,
    Field,
    RegisterLayout,
    RingStats,
    SampleRing,
    SeriesSet,
    __version__,
    decode_batch,
    encode_batches,
    encode_msgpack,
    rebatch,
)
from panelfast.exceptions import (
    AlarmError,
    BatchError,
    ConfigError,
    DecodeError,
    LayoutError,
    PanelfastError,
    RingError,
)

__all__ = [
    "DEFAULT_LEVEL",
    "MAX_BODY_BYTES",
    "AlarmError",
    "AlarmEvent",
    "AlarmSet",
    "BatchError",
    "ConfigError",
    "DecodeError",
    "Decoded",
    "EncodedBatch",
    "Field",
    "LayoutError",
    "PanelfastError",
    "RegisterLayout",
    "RingError",
    "RingStats",
    "SampleRing",
    "SeriesSet",
    "__version__",
    "decode_batch",
    "encode_batches",
    "encode_msgpack",
    "rebatch",
]
