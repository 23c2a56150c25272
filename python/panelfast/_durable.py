"""One durable write for every small state file the gateway keeps.

A crash at any instant must leave either the old file or the new one, never
a torn or empty one, and a rename the disk has not seen can bring the old
name back after a power cut. So: write a temporary file beside the target,
fsync it, rename it over the target, fsync the directory. Files are created
with their final mode (0600 by default: most of them hold tokens or identity),
never briefly readable by others.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` durably: the old content or the new, after any crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an older temporary left by a crash may have another mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
