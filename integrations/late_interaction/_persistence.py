"""Saving and loading a LateInteractionIndex folder: manifest, checks, crash-safe swap.

Folder layout (``format_version`` 1), all pickle-free::

    config.json      format_version, IndexConfig, encoder fingerprint, counts, file sizes
    tokens.voyager   Voyager's own file (absent while the index has never held a document)
    token_doc.npy    int32, token id -> document slot
    doc_offsets.npy  int64, n_slots + 1
    embeddings.npy   float16|float32, n_tokens x dim (loaded memory-mapped)
    docs.jsonl       one line per slot: id, text, metadata ({"deleted": true} for dead slots)

``config.json`` is written last: a folder with a valid one is complete. A save writes a temp
folder beside the target, fsyncs it, renames the target aside, renames the temp folder in and
removes the aside copy; :func:`recover_directory` finishes a swap a crash interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from late_interaction._version import __version__
from late_interaction.config import ENCODER_SETTING_NAMES, IndexConfig
from late_interaction.exceptions import (
    DimensionMismatchError,
    IndexFormatError,
    ModelMismatchError,
)
from late_interaction.index import VoyagerTokenIndex
from late_interaction.store import DOCS_FILE, DocumentStore, TokenStore, fsync_file

__all__ = [
    "FORMAT_VERSION",
    "LoadedIndex",
    "check_model",
    "model_from_fingerprint",
    "read_index",
    "recover_directory",
    "write_directory_atomically",
    "write_index",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
HNSW_FILE = "tokens.voyager"
_TMP_TAG, _OLD_TAG = ".tmp-", ".old-"


@dataclass
class LoadedIndex:
    """Everything :func:`read_index` reads back."""

    manifest: dict[str, Any]
    config: IndexConfig
    store: TokenStore | None
    docs: DocumentStore
    live: np.ndarray
    hnsw: VoyagerTokenIndex | None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def write_index(
    path: Path,
    *,
    config: IndexConfig,
    fingerprint: dict[str, Any],
    dim: int,
    store: TokenStore | None,
    docs: DocumentStore,
    live: np.ndarray,
    hnsw: VoyagerTokenIndex | None,
) -> Path:
    """Write an index folder atomically (the caller holds the write lock)."""

    def write(tmp: Path) -> None:
        token_store = store if store is not None else TokenStore(dim, config.storage_dtype)
        token_store.save(tmp)
        docs.save(tmp, live)
        if hnsw is not None:
            hnsw.save(tmp / HNSW_FILE)
            with open(tmp / HNSW_FILE, "rb+") as f:
                fsync_file(f)
        manifest = {
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "index_config": config.to_dict(),
            "encoder": _jsonable(fingerprint),
            "dim": dim,
            "n_docs": token_store.n_docs,
            "n_tokens": token_store.n_tokens,
            "n_live": int(live.sum()),
            "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())},
        }
        with open(tmp / CONFIG_FILE, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            fsync_file(f)

    return write_directory_atomically(path, write)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        with open(path / CONFIG_FILE, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError as exc:
        msg = f"{path} holds no {CONFIG_FILE}: it is not a saved LateInteractionIndex (or damaged)."
        raise IndexFormatError(msg) from exc
    except (OSError, ValueError) as exc:
        msg = f"cannot read {path / CONFIG_FILE}: {exc}. The index folder is damaged."
        raise IndexFormatError(msg) from exc
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        msg = (
            f"{path} has index format_version {version!r}; this late-interaction "
            f"{__version__} reads version {FORMAT_VERSION}. Rebuild the index with this version."
        )
        raise IndexFormatError(msg, format_version=version if isinstance(version, int) else None)
    return manifest


def read_index(path: Path) -> LoadedIndex:
    """Read and validate an index folder, recovering an interrupted save first.

    Raises:
        FileNotFoundError: If nothing (not even an interrupted save) exists at ``path``.
        IndexFormatError: If files are missing, damaged, inconsistent or of another version.
    """
    path = Path(path)
    if not recover_directory(path) and not path.exists():
        msg = f"no saved index at {path}; save one with LateInteractionIndex.save(path)."
        raise FileNotFoundError(msg)
    manifest = _read_manifest(path)
    try:
        config = IndexConfig.from_dict(manifest["index_config"])
        dim, n_docs, n_tokens = (
            int(manifest["dim"]),
            int(manifest["n_docs"]),
            int(manifest["n_tokens"]),
        )
        files = dict(manifest["files"])
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{path / CONFIG_FILE} lacks or has invalid fields ({exc!r}); rebuild the index."
        raise IndexFormatError(msg, FORMAT_VERSION) from exc
    for name, size in files.items():
        actual = (path / name).stat().st_size if (path / name).is_file() else None
        if actual != size:
            msg = (
                f"{path / name} is {'missing' if actual is None else f'{actual} bytes'}; "
                f"config.json expects {size} bytes. The index folder is damaged; rebuild it."
            )
            raise IndexFormatError(msg, FORMAT_VERSION)
    if DOCS_FILE not in files or (n_tokens > 0) != (HNSW_FILE in files):
        msg = f"{path / CONFIG_FILE} lists an incomplete set of files {sorted(files)}; rebuild."
        raise IndexFormatError(msg, FORMAT_VERSION)
    store = TokenStore.load(
        path, dim=dim, dtype=config.storage_dtype, n_docs=n_docs, n_tokens=n_tokens
    )
    docs, live = DocumentStore.load(path, n_docs)
    hnsw = None
    if n_tokens > 0:
        _, _, token_doc = store.views()
        hnsw = VoyagerTokenIndex.load(
            path / HNSW_FILE,
            dim=dim,
            space=config.space,
            live=live[token_doc],
            storage=config.hnsw_storage,
        )
    return LoadedIndex(manifest, config, store if n_docs else None, docs, live, hnsw)


def check_model(manifest: dict[str, Any], model: Any, path: Path) -> None:
    """Refuse a model other than the one that built the index.

    Raises:
        DimensionMismatchError: If the model's dimension differs.
        ModelMismatchError: If its fingerprint differs.
    """
    if int(model.dim) != int(manifest["dim"]):
        msg = (
            f"the index at {path} holds {manifest['dim']}-d token vectors; the given model "
            f"produces {model.dim}-d ones. Load it with the model that built it (or model=None)."
        )
        raise DimensionMismatchError(msg)
    saved, given = manifest.get("encoder"), _jsonable(model.fingerprint())
    if saved != given:
        keys = sorted(
            key
            for key in set(saved or {}) | set(given or {})
            if (saved or {}).get(key) != (given or {}).get(key)
        )
        msg = (
            f"the index at {path} was built by another encoder (fingerprints differ in {keys}). "
            "Scores would be meaningless: load it with model=None (rebuilds the saved encoder) "
            "or the same model, or rebuild the index with the new one."
        )
        raise ModelMismatchError(msg)


def model_from_fingerprint(fingerprint: dict[str, Any], path: Path) -> Any:
    """Rebuild the encoder an index was saved with (embedded default, local folder or hub id).

    Every encoding setting recorded in the fingerprint is passed explicitly, so the rebuilt
    encoder matches even where the checkpoint's own defaults would differ.

    Raises:
        ModelMismatchError: If it cannot be rebuilt (the caller should pass the model).
    """
    from late_interaction.encoder import DEFAULT_MODEL, ColBERT

    name = fingerprint.get("name_or_path")
    try:
        if not name:
            msg = "the fingerprint names no checkpoint"
            raise ValueError(msg)
        overrides = {key: fingerprint[key] for key in ENCODER_SETTING_NAMES if key in fingerprint}
        return ColBERT.from_pretrained(None if name == DEFAULT_MODEL else name, **overrides)
    except Exception as exc:
        msg = (
            f"cannot rebuild the encoder of the index at {path} from its saved fingerprint "
            f"({exc}). Pass it explicitly: LateInteractionIndex.load(path, model)."
        )
        raise ModelMismatchError(msg) from exc


# --- crash-safe directory swap ---------------------------------------------------------------


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


def _complete(folder: Path) -> bool:
    try:
        _read_manifest(folder)
    except IndexFormatError:
        return False
    return True


def write_directory_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder so that a crash at any point leaves the previous one recoverable.

    Args:
        target: The final folder.
        write: Writes every file (fsynced) into the folder it is given, ``config.json`` last.

    Returns:
        ``target`` as an absolute path.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(target)
    if target.is_dir() and any(target.iterdir()) and not (target / CONFIG_FILE).exists():
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


def recover_directory(target: Path) -> bool:
    """Finish a swap that a crash interrupted; return whether ``target`` now exists.

    If ``target`` is missing, the newest complete temp folder (the interrupted save) or else the
    aside copy (the previous save) is renamed into place. If it exists, aside leftovers go.
    """
    target = Path(target).absolute()
    if not target.exists():
        fresh = [p for p in _siblings(target, _TMP_TAG) if _complete(p)]
        fresh.sort(key=lambda p: (p / CONFIG_FILE).stat().st_mtime_ns, reverse=True)
        candidates = fresh + [p for p in _siblings(target, _OLD_TAG) if _complete(p)]
        if not candidates:
            return False
        logger.warning("recovering %s from an interrupted save (%s)", target, candidates[0].name)
        os.replace(candidates[0], target)
        fsync_path(target.parent)
    for leftover in _siblings(target, _OLD_TAG):
        shutil.rmtree(leftover, ignore_errors=True)
    return True
