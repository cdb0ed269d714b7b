"""All-or-nothing writes: a save either completes or leaves the previous file (or directory) untouched.

Two tools: :func:`atomic_path` for one file (write a temporary sibling, fsync, rename over the target) and
:func:`staged_directory` for a set of files that only make sense together (a checkpoint: config + weights + shard
index), written into a temporary sibling directory and swapped in with one ``rename`` — on Linux an atomic
``renameat2(RENAME_EXCHANGE)`` of the two directories. Files are created with the usual mode (0666 less the umask),
not the private 0600 of ``tempfile``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Union

PathLike = Union[str, os.PathLike]
_STAGE_TAG = ".save-"
_OLD_TAG = ".old-"


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask(x) sets the process-wide value, racing other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """0666 less the umask: what ``open(path, "w")`` would give (0644 under the usual umask 022)."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it over ``target``.

    On any exception (or a kill before the rename) ``target`` keeps its previous content and the temporary file is
    removed (a killed process may leave a ``.tmp-*`` file behind, never a half-written ``target``; the next
    :func:`staged_directory` save of the directory drops such leftovers).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(target: PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


# ----------------------------------------------------------------------------------------------- whole directories


def _is_leftover(name: str) -> bool:
    """A temporary file of an interrupted atomic write."""
    return name.startswith(".") and ".tmp-" in name


def _siblings(target: Path, tag: str) -> list:
    return sorted(target.parent.glob(f".{target.name}{tag}*"), key=lambda p: p.stat().st_mtime)


def recover_directory(target: PathLike) -> None:
    """Finish what a save killed mid-swap left: ``target`` missing but its previous version kept aside is put back.

    Only the portable two-rename swap (used where ``RENAME_EXCHANGE`` is unavailable) has such a window.
    """
    target = Path(os.path.abspath(target))
    if not target.exists():
        old = _siblings(target, _OLD_TAG)
        if old:
            os.rename(old[-1], target)


def _clear_stale(target: Path) -> None:
    recover_directory(target)
    for stale in _siblings(target, _STAGE_TAG) + _siblings(target, _OLD_TAG):
        shutil.rmtree(stale, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        _fsync_dir(Path(directory))


@contextlib.contextmanager
def staged_directory(target: PathLike, replace: Iterable[str] = ()) -> Iterator[Path]:
    """Write a set of files into ``target`` all or nothing.

    Yields an empty-of-``replace`` copy of ``target`` (a temporary sibling directory: every other entry of ``target``
    is hard-linked in, so unrelated files such as tokenizer files survive the save) for the caller to write into.
    On success the stage is fsynced and swapped in with one rename; on any exception, or a kill at any point, the
    previous ``target`` stays whole (the next save or :func:`recover_directory` cleans up what a kill left).

    Args:
        target: the directory to save into (created if missing; a symlink is followed).
        replace: glob patterns of the entries of ``target`` that the save replaces (not carried into the stage).
    """
    target = Path(os.path.realpath(os.fspath(target)))
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"save directory {os.fspath(target)!r} is a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(target)
    stage = target.parent / f".{target.name}{_STAGE_TAG}{uuid.uuid4().hex[:12]}"
    try:
        os.mkdir(stage)
    except OSError as err:  # e.g. the parent is read-only while target itself is writable: write in place
        warnings.warn(
            f"cannot stage the save beside {os.fspath(target)!r} ({err}); writing in place, not all-or-nothing",
            stacklevel=3,
        )
        stage = None
    if stage is None:
        target.mkdir(exist_ok=True)
        yield target
        return
    try:
        patterns = list(replace)
        if target.is_dir():
            for entry in os.scandir(target):
                if _is_leftover(entry.name) or any(Path(entry.name).match(p) for p in patterns):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.copytree(entry.path, stage / entry.name, symlinks=True, copy_function=_link_or_copy)
                else:
                    _link_or_copy(entry.path, os.fspath(stage / entry.name))
            os.chmod(stage, target.stat().st_mode & 0o7777)
        else:
            os.chmod(stage, 0o777 & ~_umask())
        yield stage
        _fsync_tree(stage)
        if not target.exists():
            os.rename(stage, target)
        elif _exchange(stage, target):
            shutil.rmtree(stage, ignore_errors=True)  # the stage now holds the previous version
        else:
            old = target.parent / f".{target.name}{_OLD_TAG}{uuid.uuid4().hex[:12]}"
            os.rename(target, old)
            os.rename(stage, target)  # a kill between these two renames is undone by recover_directory
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(target.parent)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
