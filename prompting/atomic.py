"""One atomic JSON writer for every file the project keeps (state, local chain, keys,
benchmark results).

A file written in place can be left half-written by a crash or ``kill -9``, and a
rename that is not yet on disk can be lost with the power. ``write_json`` writes a
temp file in the same folder, flushes and fsyncs it, renames it over the target
(``os.replace``: readers see the old file or the new one, never a mix), then fsyncs
the folder so the rename itself is durable. The temp file is created readable by its
owner only (``mkstemp``), and so is the result: the keys file holds key hashes.
"""

from __future__ import annotations

import json
import os
import tempfile


def _fsync_dir(folder: str) -> None:
    """Make the renames inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(
    path: str, data: object, *, indent: int | None = None, keep_previous: bool = False
) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably.

    ``keep_previous`` first moves the current file to ``path + ".bak"``, the last good
    copy a reader falls back to if the new one is ever damaged. On any error the temp
    file is removed and ``path`` is left as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and os.path.exists(path):
            os.replace(path, path + ".bak")
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
