"""The durable outbox: data and alarm events wait here until the cloud acknowledged them.

One SQLite file (WAL, ``synchronous=FULL``: a commit survives a power cut).

Data (cloud protocol §7) goes through three states:

``chunk``
    Samples drained from the rings, stored as batches numbered
    *provisionally* 0. While the cloud is unreachable, small chunks are
    compacted into full batches (up to the hub's 256,000 bytes, zstd level
    19), which is what keeps a month at the product ceiling within about 70 MB.
    Compaction numbers them, still provisionally, with the ``seq`` each will
    be sent under if the chunks before it go one batch each: a chunk whose
    number is the next ``seq`` when it is sealed is sent as it is; any other
    is encoded again under the right one (a chunk's number is never trusted).
``sealed``
    At most one batch at a time: the next one to send, its ``seq`` and its
    content fixed in the same transaction that removes the chunks it was made
    from, before it is first sent. Across crashes it is sent again unchanged,
    so a lost acknowledgement heals as a duplicate at the cloud and a ``seq``
    never carries other content.
``acknowledged``
    Deleted, and ``last_acked`` moves on. Nothing is deleted before.

A batch the cloud refuses with 400 is set aside in ``refused`` (kept,
counted, visible) and its ``seq`` is reused for the next content, as §7 says.

Alarm states (active, and since when a pending delay runs) are kept here
too, written in the same transaction as the events of their transitions:
after a crash at any instant the file holds an event together with the state
it led to, or neither, so no alarm is announced twice nor a transition lost.

Disk quota policy: when the file's live pages exceed the quota, the oldest
chunks are dropped, their samples counted in ``dropped_samples`` and logged as
a warning; the sealed batch and alarm events are never dropped.
"""

from panelfast.outbox._model import (
    CHUNK_LEVEL,
    COMPACT_AFTER,
    OutboxStats,
    PendingEvent,
    PreparedBatch,
    SavedAlarm,
    SealedBatch,
)
from panelfast.outbox._outbox import Outbox

__all__ = [
    "CHUNK_LEVEL",
    "COMPACT_AFTER",
    "Outbox",
    "OutboxStats",
    "PendingEvent",
    "PreparedBatch",
    "SavedAlarm",
    "SealedBatch",
]
