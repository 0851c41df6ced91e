"""One training run per workdir at a time: a lock file, ``WORKDIR/.lock``.

Two runs writing one workdir would interleave checkpoints, statistics, metrics and
the summary. The lock is an ``flock`` on the file, which the kernel releases when
the process ends however it ends, so the lock of a killed run is never stale: the
next run simply takes it. The file says which process holds it (pid and host), so
a refused run can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from stmodel.errors import UserError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def hold_workdir(workdir: str | Path) -> Iterator[Path]:
    """Hold ``workdir``'s lock for the duration, or stop in one line naming the process
    that holds it. The workdir must exist."""
    path = Path(workdir) / LOCK_FILE
    descriptor = _acquire(path, Path(workdir))
    try:
        yield path
    finally:
        # Unlinked while still held: a run waiting on this file would otherwise lock a
        # file no longer in the workdir (_acquire checks for that and opens it again).
        path.unlink(missing_ok=True)
        os.close(descriptor)


def _acquire(path: Path, workdir: Path) -> int:
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UserError(
                f"cannot lock the workdir {workdir}: {path}: {error.strerror or error}"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise UserError(
                f"{workdir}: another run is using this workdir ({holder} holds {path}); "
                "wait for it to end or stop it, or use another --workdir"
            ) from None
        try:
            same_file = os.fstat(descriptor).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(descriptor)  # its holder removed it as we locked it: lock the new one
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, record + b"\n", 0)
    return descriptor


def _holder(descriptor: int) -> str:
    try:
        record = json.loads(os.pread(descriptor, 4096, 0) or b"{}")
        return f"process {int(record['pid'])} on {record['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet said which"


def for_run(workdir: str | Path) -> contextlib.AbstractContextManager:
    """The lock of a (possibly multi-process) run: process 0 holds it for them all, since
    the processes of one run share its workdir."""
    import jax

    return hold_workdir(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
