"""Crash-safe folder writes: fsync helpers and an atomic directory swap.

A save writes a temp folder beside the target, fsyncs it, renames the target aside, renames the
temp folder in and removes the aside copy; :func:`recover_directory` finishes a swap that a crash
interrupted. A folder is complete when its manifest (``config.json``, written last) reads back.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANIFEST_FILE = "config.json"
_TMP_TAG, _OLD_TAG = ".tmp-", ".old-"


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
    return sorted(target.parent.glob(f".{target.name}{tag}*"))


def write_directory_atomically(
    target: Path, write: Callable[[Path], None], is_complete: Callable[[Path], bool]
) -> Path:
    """Write a folder so that a crash at any point leaves the previous one recoverable.

    Args:
        target: The final folder.
        write: Writes every file (fsynced) into the folder it is given, the manifest last.
        is_complete: Whether a folder holds a complete save (its manifest reads back).

    Returns:
        ``target`` as an absolute path.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(target, is_complete)
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST_FILE).exists():
        msg = (
            f"{target} is a non-empty folder without a saved index; refusing to replace it. "
            "Save into a new or empty folder."
        )
        raise FileExistsError(msg)
    if target.exists() and not target.is_dir():
        msg = f"{target} is a file; save the index into a folder path."
        raise FileExistsError(msg)
    for stale in _siblings(target, _TMP_TAG):  # earlier attempts that a crash cut short
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.with_name(f".{target.name}{_TMP_TAG}{uuid.uuid4().hex}")
    tmp.mkdir()
    try:
        write(tmp)
        fsync_path(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    aside = target.with_name(f".{target.name}{_OLD_TAG}{uuid.uuid4().hex}")
    if target.exists():
        os.replace(target, aside)
    os.replace(tmp, target)
    fsync_path(target.parent)
    shutil.rmtree(aside, ignore_errors=True)
    return target


def recover_directory(target: Path, is_complete: Callable[[Path], bool]) -> bool:
    """Finish a swap that a crash interrupted; return whether ``target`` now exists.

    If ``target`` is missing, the newest complete temp folder (the interrupted save) or else the
    aside copy (the previous save) is renamed into place. If it exists, aside leftovers go.

    Args:
        target: The final folder.
        is_complete: Whether a folder holds a complete save (its manifest reads back).
    """
    target = Path(target).absolute()
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
