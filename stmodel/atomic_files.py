"""Writing output files whole or not at all: a temporary file, renamed into place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not
# safe while other threads create files.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else it is removed.

    The file gets the permissions a plain ``open`` would give it (not
    ``mkstemp``'s owner-only ones), so outputs stay readable by others.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The same suffix as the target, so writers that go by it pick the same format.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.tmp",
                                             suffix=path.suffix)
    os.close(descriptor)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
