"""Saving and loading a LateInteractionIndex folder: manifest, checks, crash-safe swap.

Folder layout, all pickle-free. ``format_version`` 1 (the exact store, ``nbits=None``)::

    config.json      format_version, IndexConfig, encoder fingerprint, counts, file sizes
    tokens.voyager   Voyager's own file (absent while the index has never held a document)
    token_doc.npy    int32, token id -> document slot
    doc_offsets.npy  int64, n_slots + 1
    embeddings.npy   float16|float32, n_tokens x dim (loaded memory-mapped)
    docs.jsonl       one line per slot: id, text, metadata ({"deleted": true} for dead slots)
    dense.npy        float32, n_slots x dense_dim, if kept (manifest: dense_weight ranked by)

``format_version`` 2 (a compressed store) replaces ``embeddings.npy`` and ``tokens.voyager`` by::

    codes.npy            uint16|uint32, centroid id per token (memory-mapped)
    residuals.npy        uint8, n_tokens x ceil(dim * nbits / 8) packed residuals (memory-mapped)
    codec_centroids.npy  float16, n_centroids x dim;  codec_cutoffs.npy, codec_weights.npy float32
    ivf_offsets.npy      int64, n_centroids + 1;  ivf_slots.npy int32 (memory-mapped)

and its manifest's ``codec`` records the kind, ``nbits``, ``n_centroids`` and the sha256 of the
codec arrays, checked on load. Exact stores stay version 1, so older releases keep reading them.
``config.json`` is written last: a folder with a valid one is complete (swap: ``atomic.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from late_interaction._index.atomic import (
    MANIFEST_FILE,
    fsync_file,
    recover_directory,
    write_directory_atomically,
)
from late_interaction._index.codec import ResidualCodec
from late_interaction._index.dense_store import DENSE_FILE
from late_interaction._index.document_store import DOCS_FILE, DocumentStore
from late_interaction._index.encoder_identity import jsonable
from late_interaction._index.hnsw import VoyagerTokenIndex
from late_interaction._index.ivf import InvertedLists
from late_interaction._index.token_store import TokenStore
from late_interaction._version import __version__
from late_interaction.config import IndexConfig
from late_interaction.exceptions import IndexFormatError

FORMAT_VERSION = 1  # the exact store
COMPRESSED_FORMAT_VERSION = 2
_READABLE = (FORMAT_VERSION, COMPRESSED_FORMAT_VERSION)
CONFIG_FILE = MANIFEST_FILE
HNSW_FILE = "tokens.voyager"
CODEC_FILES = {
    "centroids": "codec_centroids.npy",
    "cutoffs": "codec_cutoffs.npy",
    "weights": "codec_weights.npy",
}
IVF_FILES = ("ivf_offsets.npy", "ivf_slots.npy")


@dataclass
class LoadedIndex:
    """Everything :func:`read_index` reads back."""

    manifest: dict[str, Any]
    config: IndexConfig
    store: TokenStore | None
    docs: DocumentStore
    live: np.ndarray
    hnsw: VoyagerTokenIndex | None
    ivf: InvertedLists | None = None


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
    ivf: InvertedLists | None = None,
    extra_files: dict[str, str] | None = None,
    dense_weight: float = 0.0,
) -> Path:
    """Write an index folder atomically (the caller holds the write lock).

    ``extra_files`` (``{name: text}``, checked by :func:`encode_extra_files`) go into the same
    swap, so they are never out of step with the index.
    """
    codec = store.codec if store is not None else None

    def write(tmp: Path) -> None:
        token_store = store if store is not None else TokenStore(dim, config.storage_dtype)
        token_store.save(tmp)
        docs.save(tmp, live)
        for name, text in (extra_files or {}).items():
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.write(text)
                fsync_file(f)
        if hnsw is not None:
            hnsw.save(tmp / HNSW_FILE)
            with open(tmp / HNSW_FILE, "rb+") as f:
                fsync_file(f)
        if codec is not None and ivf is not None:
            arrays = {CODEC_FILES[key]: value for key, value in codec.arrays().items()}
            arrays.update(zip(IVF_FILES, ivf.arrays(), strict=True))
            for name, array in arrays.items():
                with open(tmp / name, "wb") as f:
                    np.save(f, np.ascontiguousarray(array), allow_pickle=False)
                    fsync_file(f)
        manifest = {
            "format_version": FORMAT_VERSION if codec is None else COMPRESSED_FORMAT_VERSION,
            "codec": None if codec is None else _codec_record(codec),
            "library_version": __version__,
            "index_config": config.to_dict(),
            "encoder": jsonable(fingerprint),
            "dim": dim,
            "n_docs": token_store.n_docs,
            "n_tokens": token_store.n_tokens,
            "n_live": int(live.sum()),
            "dense_weight": dense_weight,
            "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())},
        }
        with open(tmp / CONFIG_FILE, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            fsync_file(f)

    return write_directory_atomically(path, write, _complete)


def encode_extra_files(extra_files: Any) -> dict[str, str]:
    """Serialise ``{file name: JSON value}`` for :func:`write_index`, before anything is written.

    Raises:
        ValueError: If a name is not a plain ``*.json`` file name or is the manifest's.
        TypeError: If ``extra_files`` is not a mapping or a value is not JSON-serialisable.
    """
    if not isinstance(extra_files, dict):
        msg = f"extra_files must be a dict {{file name: JSON value}}; got {type(extra_files)}."
        raise TypeError(msg)
    out = {}
    for name, value in extra_files.items():
        plain = isinstance(name, str) and Path(name).name == name and not name.startswith(".")
        if not plain or not name.endswith(".json") or name == CONFIG_FILE:
            msg = f"extra file name {name!r} must be a plain '*.json' name, not {CONFIG_FILE}."
            raise ValueError(msg)
        try:
            out[name] = json.dumps(value, indent=2, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            msg = f"extra file {name!r} must hold JSON-serialisable values ({exc})."
            raise TypeError(msg) from exc
    return out


def _codec_record(codec: ResidualCodec) -> dict[str, Any]:
    return {
        "kind": "residual",
        "nbits": codec.nbits,
        "n_centroids": codec.n_centroids,
        "dim": codec.dim,
        "checksum": codec.checksum(),
    }


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
    if version not in _READABLE:
        msg = (
            f"{path} has index format_version {version!r}; this late-interaction "
            f"{__version__} reads versions {_READABLE}. Rebuild the index with this version."
        )
        raise IndexFormatError(msg, format_version=version if isinstance(version, int) else None)
    return manifest


def _complete(folder: Path) -> bool:
    try:
        _read_manifest(folder)
    except IndexFormatError:
        return False
    return True


def read_index(path: Path) -> LoadedIndex:
    """Read and validate an index folder, recovering an interrupted save first.

    Raises:
        FileNotFoundError: If nothing (not even an interrupted save) exists at ``path``.
        IndexFormatError: If files are missing, damaged, inconsistent or of another version.
    """
    path = Path(path)
    if not recover_directory(path, _complete) and not path.exists():
        msg = f"no saved index at {path}; save one with LateInteractionIndex.save(path)."
        raise FileNotFoundError(msg)
    manifest = _read_manifest(path)
    try:
        config = IndexConfig.from_dict(manifest["index_config"])
        dim, n_docs, n_tokens = (int(manifest[key]) for key in ("dim", "n_docs", "n_tokens"))
        files = dict(manifest["files"])
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{path / CONFIG_FILE} lacks or has invalid fields ({exc!r}); rebuild the index."
        raise IndexFormatError(msg, manifest["format_version"]) from exc
    for name, size in files.items():
        actual = (path / name).stat().st_size if (path / name).is_file() else None
        if actual != size:
            msg = (
                f"{path / name} is {'missing' if actual is None else f'{actual} bytes'}; "
                f"config.json expects {size} bytes. The index folder is damaged; rebuild it."
            )
            raise IndexFormatError(msg, manifest["format_version"])
    version = manifest["format_version"]
    codec = _read_codec(path, manifest, config, files) if version == 2 else None
    searchable = set(IVF_FILES) <= set(files) if codec is not None else HNSW_FILE in files
    if DOCS_FILE not in files or (n_tokens > 0) != searchable:
        msg = f"{path / CONFIG_FILE} lists an incomplete set of files {sorted(files)}; rebuild."
        raise IndexFormatError(msg, version)
    store = TokenStore.load(
        path, dim=dim, dtype=config.storage_dtype, n_docs=n_docs, n_tokens=n_tokens, codec=codec
    )
    docs, live = DocumentStore.load(path, n_docs, dense=DENSE_FILE in files)
    hnsw, ivf = None, None
    if codec is not None:
        offsets, slots = (_load_array(path / name) for name in IVF_FILES)
        if offsets.shape != (codec.n_centroids + 1,) or offsets[-1] != slots.shape[0]:
            msg = f"the inverted lists in {path} do not match the codec; rebuild the index."
            raise IndexFormatError(msg, version)
        ivf = InvertedLists.from_arrays(offsets, slots)
    elif n_tokens > 0:
        _, _, token_doc = store.views()
        hnsw = VoyagerTokenIndex.load(
            path / HNSW_FILE,
            dim=dim,
            space=config.space,
            live=live[token_doc],
            storage=config.hnsw_storage,
        )
    return LoadedIndex(manifest, config, store if n_docs else None, docs, live, hnsw, ivf)


def _load_array(file: Path) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        msg = f"cannot read {file}: {exc}. The index folder is damaged; rebuild it."
        raise IndexFormatError(msg, COMPRESSED_FORMAT_VERSION) from exc


def _read_codec(
    path: Path, manifest: dict[str, Any], config: IndexConfig, files: dict[str, int]
) -> ResidualCodec:
    """Rebuild the codec of a compressed folder and check it against the manifest.

    Raises:
        IndexFormatError: If the codec record or files are missing, disagree with the index
            settings, or do not match the recorded checksum.
    """
    record = manifest.get("codec")
    version = COMPRESSED_FORMAT_VERSION
    if not isinstance(record, dict) or record.get("kind") != "residual":
        msg = f"{path / CONFIG_FILE} records no residual codec ({record!r}); rebuild the index."
        raise IndexFormatError(msg, version)
    if record.get("nbits") != config.nbits:
        msg = (
            f"{path} holds a {record.get('nbits')}-bit codec but its IndexConfig says "
            f"nbits={config.nbits}; the folder is inconsistent. Rebuild the index."
        )
        raise IndexFormatError(msg, version)
    if not set(CODEC_FILES.values()) <= set(files):
        msg = f"{path} lacks the codec files {sorted(CODEC_FILES.values())}; rebuild the index."
        raise IndexFormatError(msg, version)
    arrays = {key: np.array(_load_array(path / name)) for key, name in CODEC_FILES.items()}
    try:
        codec = ResidualCodec.from_arrays(arrays, record["nbits"])
    except ValueError as exc:
        msg = f"the codec files in {path} are invalid ({exc}); rebuild the index."
        raise IndexFormatError(msg, version) from exc
    if codec.checksum() != record.get("checksum") or codec.dim != manifest.get("dim"):
        msg = (
            f"the codec in {path} does not match the checksum and dim its manifest records: "
            "the files come from different saves or were changed. Rebuild the index."
        )
        raise IndexFormatError(msg, version)
    return codec
