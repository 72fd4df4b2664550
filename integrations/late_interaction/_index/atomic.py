"""Crash-safe folder writes: fsync helpers, a writer lock and an atomic directory swap.

A save writes a temp folder beside the target, fsyncs it, renames the target aside, renames the
temp folder in and removes the aside copy; :func:`recover_directory` finishes a swap that a crash
interrupted. A folder is complete when its manifest (``config.json``, written last) reads back.

Writers (saves, recoveries) of one folder are serialised across processes by a lock file beside
it, ``.NAME.lock`` (``filelock``: an OS lock, released when its process dies); it stays there, as
deleting a lock file races with the next writer. Readers take no lock: they compare the folder's
:func:`generation` before and after reading (``persistence.py``). Siblings (temp and aside copies)
are found by exact name prefix, never by glob: a folder named ``a*`` must not match ``abc``'s.
Files in the target that the save did not write and that are not index files (another library's
settings beside the index) are carried into the new folder, so a save never deletes them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

logger = logging.getLogger(__name__)

MANIFEST_FILE = "config.json"
_TMP_TAG, _OLD_TAG = ".tmp-", ".old-"


def as_folder_path(path: Any, what: str = "path") -> Path:
    """``path`` as a :class:`~pathlib.Path`, refusing what cannot name a folder.

    Raises:
        TypeError: If ``path`` is not a ``str`` or ``os.PathLike``.
        ValueError: If it is empty or holds a NUL character.
    """
    if not isinstance(path, (str, os.PathLike)):
        msg = f"{what} must be a folder path (str or pathlib.Path); got {type(path).__name__}."
        raise TypeError(msg)
    text = os.fspath(path)
    if not isinstance(text, str) or not text or "\0" in text:
        msg = f"{what} must be a non-empty folder path without NUL characters; got {path!r}."
        raise ValueError(msg)
    return Path(text)


def fsync_file(f: Any) -> None:
    """Flush a file object and fsync it, so its bytes survive a crash."""
    f.flush()
    os.fsync(f.fileno())


def fsync_path(path: Path) -> None:
    """Fsync a file or (on POSIX) a directory, so a rename into or out of it is durable."""
    if os.name == "nt":  # pragma: no cover - Windows cannot open directories for fsync
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _siblings(target: Path, tag: str) -> list[Path]:
    # Exact prefix (glob characters in a name stay literal) and a dot-free suffix (a uuid), so
    # index "a" never takes the siblings of an index named "a.tmp-b".
    prefix = f".{target.name}{tag}"
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return []
    return sorted(
        target.parent / name
        for name in names
        if name.startswith(prefix) and "." not in name[len(prefix) :]
    )


def lock_path(target: Path) -> Path:
    """The lock file that serialises writers of ``target`` (beside it, as the swap replaces it)."""
    target = Path(target).absolute()
    return target.with_name(f".{target.name}.lock")


@contextmanager
def writer_lock(target: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold the inter-process writer lock of ``target``; yields False if not ``blocking`` and busy.

    Re-entrant within a thread. The parent folder is created if needed (the lock lives there).
    """
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=-1 if blocking else 0)
    except TimeoutError:  # filelock.Timeout subclasses it
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def generation(target: Path) -> tuple[int, ...] | None:
    """What identifies one save of ``target``: changes whenever a swap replaces it (None: absent).

    The folder's and its manifest's inode with the manifest's mtime, so a reused inode is caught.
    """
    try:
        folder = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        manifest = os.stat(Path(target) / MANIFEST_FILE)
    except (FileNotFoundError, NotADirectoryError):
        return (folder.st_dev, folder.st_ino)
    return (folder.st_dev, folder.st_ino, manifest.st_ino, manifest.st_mtime_ns, manifest.st_size)


def _carry_foreign_files(source: Path, tmp: Path, owned: Iterable[str]) -> None:
    """Hard-link (or copy) into ``tmp`` what ``source`` holds that this save does not own."""
    skip = set(owned) | {p.name for p in tmp.iterdir()} | {MANIFEST_FILE}
    for entry in sorted(source.iterdir()):
        if entry.name in skip:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, tmp / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, tmp / entry.name)


def _link_or_copy(src: Any, dst: Any) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)  # same filesystem (a sibling folder): no bytes copied
    except OSError:
        shutil.copy2(src, dst)


def write_directory_atomically(
    target: Path,
    write: Callable[[Path], None],
    is_complete: Callable[[Path], bool],
    owned: Iterable[str] = (),
) -> Path:
    """Write a folder so that a crash at any point leaves the previous one recoverable.

    Holds the writer lock of ``target`` throughout. An exception leaves the previous folder in
    place (and removes the temp folder).

    Args:
        target: The final folder.
        write: Writes every file (fsynced) into the folder it is given, the manifest last.
        is_complete: Whether a folder holds a complete save (its manifest reads back).
        owned: Names the writer owns even when this save did not write them (the index files of
            every format): they are not carried over from the previous folder.

    Returns:
        ``target`` as an absolute path.

    Raises:
        FileExistsError: If ``target`` is a file, or a non-empty folder that holds no save.
    """
    target = Path(target).absolute()
    _check_target(target)  # before the lock: a refused save creates nothing
    with writer_lock(target):
        _recover(target, is_complete)
        _check_target(target)
        for stale in _siblings(target, _TMP_TAG):  # earlier attempts that a crash cut short
            shutil.rmtree(stale, ignore_errors=True)
        tmp = target.with_name(f".{target.name}{_TMP_TAG}{uuid.uuid4().hex}")
        tmp.mkdir()
        try:
            write(tmp)
            if target.is_dir():
                _carry_foreign_files(target, tmp, owned)
            fsync_path(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _swap(target, tmp)
    return target


def _check_target(target: Path) -> None:
    if target.is_dir() and any(target.iterdir()) and not _holds_index(target):
        msg = (
            f"{target} is a non-empty folder without a saved index; refusing to replace it. "
            "Save into a new or empty folder."
        )
        raise FileExistsError(msg)
    if target.exists() and not target.is_dir():
        msg = f"{target} is a file; save the index into a folder path."
        raise FileExistsError(msg)


def _holds_index(folder: Path) -> bool:
    """Whether ``folder``'s ``config.json`` is an index manifest (or too damaged to tell).

    A model checkpoint's ``config.json`` is a JSON object without ``format_version``: saving
    over it would replace the model's config, so that folder is not taken for an index.
    """
    try:
        with open(folder / MANIFEST_FILE, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # a damaged index may be saved over (that repairs it)
    return not isinstance(manifest, dict) or "format_version" in manifest


def _swap(target: Path, tmp: Path) -> None:
    """Rename ``target`` aside and ``tmp`` in; on any error, put the previous folder back."""
    aside = target.with_name(f".{target.name}{_OLD_TAG}{uuid.uuid4().hex}")
    moved_aside = swapped_in = False
    try:
        if target.exists():
            os.replace(target, aside)
            moved_aside = True
        os.replace(tmp, target)
        swapped_in = True
        fsync_path(target.parent)
    except BaseException:
        try:  # a save that raises leaves the previous state (a crash here: recover_directory)
            if swapped_in:
                os.replace(target, tmp)
            if moved_aside:
                os.replace(aside, target)
        except OSError:
            logger.exception("could not undo the interrupted swap of %s", target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def recover_directory(target: Path, is_complete: Callable[[Path], bool]) -> bool:
    """Finish a swap that a crash interrupted; return whether ``target`` now exists.

    If ``target`` is missing, the newest complete temp folder (the interrupted save) or else the
    aside copy (the previous save) is renamed into place. If it exists, aside leftovers go.
    The work is done under the writer lock, so it never races a save in progress: a reader
    that finds ``target`` missing mid-swap waits for the swap to end. Aside leftovers beside an
    existing ``target`` are removed only when no writer holds the lock (else it removes them).

    Args:
        target: The final folder.
        is_complete: Whether a folder holds a complete save (its manifest reads back).
    """
    target = Path(target).absolute()
    if target.exists():
        if _siblings(target, _OLD_TAG):
            try:
                with writer_lock(target, blocking=False) as locked:
                    if locked:
                        _recover(target, is_complete)
            except OSError:  # a read-only location: leave the leftovers to a writer
                pass
        return True
    if not _siblings(target, _TMP_TAG) and not _siblings(target, _OLD_TAG):
        return False
    with writer_lock(target):
        return _recover(target, is_complete)


def _recover(target: Path, is_complete: Callable[[Path], bool]) -> bool:
    if not target.exists():
        fresh = [p for p in _siblings(target, _TMP_TAG) if p.is_dir() and is_complete(p)]
        fresh.sort(key=lambda p: (p / MANIFEST_FILE).stat().st_mtime_ns, reverse=True)
        aside = [p for p in _siblings(target, _OLD_TAG) if p.is_dir() and is_complete(p)]
        candidates = fresh + aside
        if not candidates:
            return False
        logger.warning("recovering %s from an interrupted save (%s)", target, candidates[0].name)
        os.replace(candidates[0], target)
        fsync_path(target.parent)
    for leftover in _siblings(target, _OLD_TAG):
        shutil.rmtree(leftover, ignore_errors=True)
    return True
