"""Saving and loading a LateInteractionIndex folder: manifest, checks, crash-safe swap.

Folder layout, all pickle-free. ``format_version`` 1 (the exact store, ``nbits=None``)::

    config.json      format_version, IndexConfig, encoder fingerprint, counts, file sizes
    tokens.voyager   Voyager's own file (absent while the index has never held a document)
    token_doc.npy    int32, token id -> document slot
    doc_offsets.npy  int64, n_slots + 1
    embeddings.npy   float16|float32, n_tokens x dim (loaded memory-mapped)
    docs.jsonl       one line per slot: id, text, metadata ({"deleted": true} for dead slots)
    dense.npy        float32, n_slots x dense_dim, if kept (manifest: dense_weight ranked by)

``format_version`` 2 (a compressed store) replaces ``embeddings.npy``, ``tokens.voyager`` and
``token_doc.npy`` (derived from the offsets; ignored in folders that still have it) by::

    codes.npy            uint16|uint32, centroid id per token (memory-mapped)
    residuals.npy        uint8, n_tokens x ceil(dim * nbits / 8) packed residuals (memory-mapped)
    codec_centroids.npy  float16, n_centroids x dim;  codec_cutoffs.npy, codec_weights.npy float32
    ivf_offsets.npy      int64, n_centroids + 1;  ivf_slots.npy int32 (memory-mapped)
    codec_drift.npy      float64 x 5, residual statistics of codec_drift() (optional)

and its manifest's ``codec`` records the kind, ``nbits``, ``n_centroids`` and the sha256 of the
codec arrays (``codec_files.py``). Exact stores stay version 1, so older releases keep reading them.
The manifest also records the sha256 of every file and of itself, verified before anything reads
the files (``checksums.py``). ``config.json`` is written last: a folder with a valid one is
complete (swap and writer lock: ``atomic.py``). A save keeps files it does not own (another
library's settings beside the index). A reader never blames the data for a concurrent save: when
the folder's generation changed while it read, it reads again.
"""

from __future__ import annotations

import json
import logging
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from late_interaction._index.atomic import (
    MANIFEST_FILE,
    fsync_file,
    generation,
    recover_directory,
    write_directory_atomically,
    writer_lock,
)
from late_interaction._index.checksums import (
    CHECKSUMS_KEY,
    file_checksums,
    seal,
    verify_files,
    verify_manifest,
)
from late_interaction._index.codec_files import (
    CODEC_FILES,
    COMPRESSED_FORMAT_VERSION,
    IVF_FILES,
    codec_record,
    load_array,
    read_codec,
)
from late_interaction._index.dense_store import DENSE_FILE
from late_interaction._index.document_store import DOCS_FILE, DocumentStore
from late_interaction._index.encoder_identity import jsonable
from late_interaction._index.extra_files import encode_extra_files
from late_interaction._index.hnsw import VoyagerTokenIndex
from late_interaction._index.ivf import InvertedLists
from late_interaction._index.token_store import TokenStore
from late_interaction._index.token_store_files import (
    CODES_FILE,
    DRIFT_FILE,
    OFFSETS_FILE,
    RESIDUALS_FILE,
    TOKEN_DOC_FILE,
    TOKENS_FILE,
)
from late_interaction._version import __version__
from late_interaction.config import IndexConfig
from late_interaction.exceptions import IndexFormatError

__all__ = ["LoadedIndex", "encode_extra_files", "read_index", "write_index"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # the exact store
_READABLE = (FORMAT_VERSION, COMPRESSED_FORMAT_VERSION)
CONFIG_FILE = MANIFEST_FILE
HNSW_FILE = "tokens.voyager"
#: Every file name an index folder of any format owns (never carried over from a previous save).
INDEX_FILES = frozenset(
    {CONFIG_FILE, HNSW_FILE, DOCS_FILE, TOKENS_FILE, CODES_FILE, RESIDUALS_FILE, OFFSETS_FILE,
     TOKEN_DOC_FILE, DENSE_FILE, DRIFT_FILE, *CODEC_FILES.values(), *IVF_FILES}
)  # fmt: skip
#: The memory-mapped per-token arrays, the ones ``verify=False`` does not hash.
MAPPED_FILES = frozenset({TOKENS_FILE, CODES_FILE, RESIDUALS_FILE})
_READ_ATTEMPTS = 5  # reads racing a writer's swaps before reading under its lock


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
            "codec": None if codec is None else codec_record(codec),
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
        manifest[CHECKSUMS_KEY] = file_checksums(tmp, manifest["files"])
        with open(tmp / CONFIG_FILE, "w", encoding="utf-8") as f:
            json.dump(seal(manifest), f, indent=2, sort_keys=True)
            fsync_file(f)

    return write_directory_atomically(path, write, _complete, owned=INDEX_FILES)


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
    if not isinstance(manifest, dict):
        msg = f"{path / CONFIG_FILE} holds no JSON object; the index folder is damaged."
        raise IndexFormatError(msg)
    version = manifest.get("format_version")
    if version not in _READABLE:
        msg = (
            f"{path / CONFIG_FILE} records index format_version {version!r}; this "
            f"late-interaction {__version__} reads versions {_READABLE}. Rebuild the index with "
            "this version."
        )
        raise IndexFormatError(msg, format_version=version if isinstance(version, int) else None)
    verify_manifest(path, manifest)  # before trusting any other value in it
    return manifest


def _complete(folder: Path) -> bool:
    try:
        _read_manifest(folder)
    except IndexFormatError:
        return False
    return True


def read_index(path: Path, *, verify: bool = True) -> LoadedIndex:
    """Read and validate an index folder, recovering an interrupted save first.

    Args:
        path: The index folder.
        verify: Hash the memory-mapped per-token arrays too (the other files always are).

    Raises:
        FileNotFoundError: If nothing (not even an interrupted save) exists at ``path``.
        IndexFormatError: If files are missing, damaged, inconsistent or of another version.
    """
    path = Path(path)
    try:  # one stat: exists() then is_dir() could straddle a writer's swap (a race, not a file)
        is_file = not stat.S_ISDIR(path.stat().st_mode)
    except FileNotFoundError:
        is_file = False
    if is_file:
        msg = f"{path} is a file, not an index folder; pass the folder that save() wrote."
        raise NotADirectoryError(msg)
    for _attempt in range(_READ_ATTEMPTS):
        if not recover_directory(path, _complete):
            msg = f"no saved index at {path}; save one with LateInteractionIndex.save(path)."
            raise FileNotFoundError(msg)
        before = generation(path)
        try:
            loaded = _read_folder(path, verify)
        except (IndexFormatError, OSError):
            if before is not None and generation(path) == before:
                raise  # the folder did not change while we read it: the damage is real
            logger.debug("%s was replaced by a save while being read; reading it again", path)
            continue
        if before is not None and generation(path) == before:
            return loaded
    with writer_lock(path):  # a writer kept replacing it: read between two saves
        if not path.exists():
            msg = f"no saved index at {path}; save one with LateInteractionIndex.save(path)."
            raise FileNotFoundError(msg)
        return _read_folder(path, verify)


def _read_folder(path: Path, verify: bool) -> LoadedIndex:
    manifest = _read_manifest(path)
    try:
        config = IndexConfig.from_dict(manifest["index_config"])
        dim, n_docs, n_tokens = (int(manifest[key]) for key in ("dim", "n_docs", "n_tokens"))
        files = dict(manifest["files"])
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{path / CONFIG_FILE} lacks or has invalid fields ({exc!r}); rebuild the index."
        raise IndexFormatError(msg, manifest["format_version"]) from exc
    for name, size in files.items():
        if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
            msg = f"{path / CONFIG_FILE} lists a file outside the folder ({name!r}); rebuild."
            raise IndexFormatError(msg, manifest["format_version"])
        actual = (path / name).stat().st_size if (path / name).is_file() else None
        if actual != size:
            msg = (
                f"{path / name} is {'missing' if actual is None else f'{actual} bytes'}; "
                f"config.json expects {size} bytes. The index folder is damaged; rebuild it."
            )
            raise IndexFormatError(msg, manifest["format_version"])
    verify_files(path, manifest, files, skip=() if verify else MAPPED_FILES)
    version = manifest["format_version"]
    codec = read_codec(path, manifest, config, files) if version == 2 else None
    searchable = set(IVF_FILES) <= set(files) if codec is not None else HNSW_FILE in files
    needs_candidates = n_tokens > 0 and (codec is not None or config.ann)
    if DOCS_FILE not in files or needs_candidates != searchable:
        msg = f"{path / CONFIG_FILE} lists an incomplete set of files {sorted(files)}; rebuild."
        raise IndexFormatError(msg, version)
    store = TokenStore.load(
        path, dim=dim, dtype=config.storage_dtype, n_docs=n_docs, n_tokens=n_tokens, codec=codec
    )
    docs, live = DocumentStore.load(path, n_docs, dense=DENSE_FILE in files)
    hnsw, ivf = None, None
    if codec is not None:
        offsets, slots = (load_array(path / name) for name in IVF_FILES)
        if offsets.shape != (codec.n_centroids + 1,) or offsets[-1] != slots.shape[0]:
            msg = f"the inverted lists in {path} do not match the codec; rebuild the index."
            raise IndexFormatError(msg, version)
        ivf = InvertedLists.from_arrays(offsets, slots, n_docs)
    elif needs_candidates:
        _, _, token_doc = store.views()
        hnsw = VoyagerTokenIndex.load(
            path / HNSW_FILE,
            dim=dim,
            space=config.space,
            live=live[token_doc],
            storage=config.hnsw_storage,
        )
    return LoadedIndex(manifest, config, store if n_docs else None, docs, live, hnsw, ivf)
