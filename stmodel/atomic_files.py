"""Output paths: written whole or not at all, never one of the command's inputs.

Every output goes to a temporary file beside its target, renamed into place when
complete. The temporary name carries the writer's process id, so a later run can
tell the leftovers of a killed writer from those of one still running, and
removes them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from stmodel.errors import UserError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not
# safe while other threads create files.
_UMASK = _read_umask()
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]*\.tmp")


def temporary_prefix(path: Path) -> str:
    """The start of the name of every temporary file written for `path` by this process."""
    return f".{path.name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else it is removed.

    The file gets the permissions a plain ``open`` would give it (not
    ``mkstemp``'s owner-only ones), so outputs stay readable by others.
    """
    path = check_output_file(path, option="output")
    remove_stale_temporaries(path)
    # The same suffix as the target, so writers that go by it pick the same format.
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=temporary_prefix(path), suffix=f".tmp{path.suffix}"
        )
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    os.close(descriptor)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(
    path: str | Path, is_own: Callable[[Path], bool], what: str, option: str = "--out"
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` that replaces ``path`` when complete.

    Only a folder the command writes is replaced: a new or empty one, or one that
    ``is_own`` recognises (``what`` names that kind of folder in the refusal). A folder
    cannot be replaced in one rename: the old one is moved aside first and put back if
    the final rename fails.
    """
    path = check_replaceable_folder(path, is_own, what, option)
    make_folder(path.parent)
    remove_stale_temporaries(path)
    prefix = temporary_prefix(path)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".tmp"))
    old = temporary.with_name(temporary.name + ".old")
    try:
        yield temporary
        # Again: files may have been put there while the command ran.
        check_replaceable_folder(path, is_own, what, option)
        os.chmod(temporary, 0o777 & ~_UMASK)
        if path.exists():
            path.rename(old)
        try:
            temporary.rename(path)
        except OSError:
            if old.exists():
                old.rename(path)
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def check_replaceable_folder(
    path: str | Path, is_own: Callable[[Path], bool], what: str, option: str = "--out"
) -> Path:
    """Refuse at the start a folder output that would delete files the command did not
    write: replacing a folder whole is only safe for a new or empty one, or one of the
    kind the command writes (``is_own``; ``what`` names that kind)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: is a file; expected the path of a folder to write")
    if path.is_dir() and any(path.iterdir()) and not is_own(path):
        raise UserError(
            f"{option} {path}: is a folder holding other files, not {what}; writing it "
            "would delete them. Choose a new or empty folder"
        )
    return path


def check_output_file(
    path: str | Path, inputs: Iterable[str | Path] = (), option: str = "--out"
) -> Path:
    """Refuse at the start, not after the work, a file output that is one of the inputs
    or cannot be written; its folder is made."""
    path = check_not_an_input(path, inputs, option)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; expected the path of a file to write")
    make_folder(path.parent)
    return path


def make_folder(path: str | Path, what: str = "folder") -> Path:
    """Create `path` and its parents, or stop in one line saying why it cannot be."""
    path = Path(path)
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                raise UserError(f"cannot create the {what} {path}: {existing} is a file")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the {what} {path}: {error.strerror or error}") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"the {what} {path} is not writable")
    return path


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files and folders that killed writers left beside `path`.

    Only those whose writing process no longer runs; returns what was removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.glob(f".{glob_escape(path.name)}.*"):
        match = _TEMPORARY.match(candidate.name)
        if not match or match["name"] != path.name or _running(int(match["pid"])):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def check_not_an_input(
    output: str | Path,
    inputs: Iterable[str | Path],
    option: str = "--out",
    replaces_folder: bool = False,
) -> Path:
    """Refuse an output path that is one of the command's inputs, or lies inside one.

    `replaces_folder`: the output is a folder written whole, so inputs inside it
    would be lost too. Links are resolved, so another name for an input is refused
    as well. Returns the output path as given.
    """
    output = Path(output)
    target = output.resolve()
    for given in inputs:
        source = Path(given).resolve()
        inside = replaces_folder and source.is_relative_to(target)
        if target == source or target.is_relative_to(source) or inside:
            what = "is" if target == source else ("holds" if inside else "lies inside")
            raise UserError(
                f"{option} {output}: this {what} the input {given}; writing it would "
                "destroy the input. Choose another output path"
            )
    return output
