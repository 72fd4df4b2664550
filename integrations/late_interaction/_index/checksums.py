"""Checksums of an index folder: every file its manifest lists, and the manifest itself.

A save records the sha256 of each file under the manifest's ``checksums`` key and the sha256 of
the manifest's own content under ``manifest_checksum``; a load verifies them before any file is
handed to numpy or Voyager (a damaged Voyager file can crash the process at the first search, so
it must never reach Voyager). sha256 streams at 0.5-1 GB/s on one core, which about doubles the
load of a warm exact index (3,000 documents, 156 MB: 260 -> 522 ms,
``benchmarks/results/loadverify-*``); ``load(verify=False)`` skips the memory-mapped token arrays,
the bulk of a big index. Folders saved before checksums existed still load, with one warning per
folder: refusing them would force users to rebuild indexes that are fine; the next ``save()``
adds the checksums.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from late_interaction.exceptions import IndexFormatError

logger = logging.getLogger(__name__)

CHECKSUMS_KEY = "checksums"
MANIFEST_CHECKSUM_KEY = "manifest_checksum"
_ALGORITHM = "sha256"
_CHUNK = 1 << 20
_warned: set[str] = set()
_warned_lock = threading.Lock()


def file_checksum(path: Path) -> str:
    """``"sha256:<hex>"`` of a file, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.new(_ALGORITHM)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return f"{_ALGORITHM}:{digest.hexdigest()}"


def file_checksums(folder: Path, names: Iterable[str]) -> dict[str, str]:
    """``{name: checksum}`` of the named files of ``folder``."""
    return {name: file_checksum(folder / name) for name in sorted(names)}


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """Checksum of the manifest's content (every key but this checksum's own, canonical JSON)."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return f"{_ALGORITHM}:{hashlib.new(_ALGORITHM, text.encode()).hexdigest()}"


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its own checksum added (call it last, on the final content)."""
    return {**manifest, MANIFEST_CHECKSUM_KEY: manifest_checksum(manifest)}


def verify_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Check the manifest's own checksum (a folder saved without checksums passes, warned once).

    Raises:
        IndexFormatError: If ``config.json`` was changed after the save.
    """
    if CHECKSUMS_KEY not in manifest and MANIFEST_CHECKSUM_KEY not in manifest:
        _warn_once(path)
        return
    if manifest.get(MANIFEST_CHECKSUM_KEY) != manifest_checksum(manifest):
        msg = (
            f"{path / 'config.json'} is damaged: its content does not match the checksum it "
            "records (the file was changed after the save). Restore it or rebuild the index."
        )
        raise IndexFormatError(msg, _version(manifest))


def verify_files(
    path: Path, manifest: dict[str, Any], files: dict[str, int], *, skip: Iterable[str] = ()
) -> None:
    """Check each listed file against its recorded checksum, before anything reads it.

    Args:
        path: The index folder.
        manifest: Its parsed ``config.json`` (checked by :func:`verify_manifest`).
        files: ``{name: size}`` from the manifest (sizes were checked already).
        skip: Names whose content is not hashed (``verify=False`` loads: memory-mapped arrays).

    Raises:
        IndexFormatError: Naming the damaged file.
    """
    if CHECKSUMS_KEY not in manifest and MANIFEST_CHECKSUM_KEY not in manifest:
        return  # saved before checksums existed (verify_manifest warned)
    recorded = manifest.get(CHECKSUMS_KEY)
    if not isinstance(recorded, dict) or set(recorded) != set(files):
        msg = (
            f"{path / 'config.json'} records checksums for {sorted(recorded or {})} but lists "
            f"the files {sorted(files)}; the folder is damaged. Rebuild the index."
        )
        raise IndexFormatError(msg, _version(manifest))
    skipped = set(skip)
    for name in sorted(files):
        if name not in skipped and file_checksum(path / name) != recorded[name]:
            msg = (
                f"{path / name} is damaged: its content does not match the checksum recorded "
                "in config.json at save time. Restore the folder from a backup or rebuild the "
                "index (its other files are not trusted either)."
            )
            raise IndexFormatError(msg, _version(manifest))


def _version(manifest: dict[str, Any]) -> int | None:
    version = manifest.get("format_version")
    return version if isinstance(version, int) else None


def _warn_once(path: Path) -> None:
    key = str(Path(path).absolute())
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(
        "%s was saved without checksums (by an older late-interaction); it is loaded without "
        "verifying its files. Save it again to add them: index.save().",
        path,
    )
