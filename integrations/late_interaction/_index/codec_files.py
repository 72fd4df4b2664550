"""The codec and inverted-list files of a compressed index folder (``format_version`` 2).

``codec_centroids.npy`` (float16), ``codec_cutoffs.npy`` and ``codec_weights.npy`` (float32) hold
the residual codec; the manifest's ``codec`` record names its kind, ``nbits``, ``n_centroids`` and
the sha256 of those arrays. ``ivf_offsets.npy`` (int64) and ``ivf_slots.npy`` (int32) hold the
centroid -> slot inverted lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from late_interaction._index.atomic import MANIFEST_FILE
from late_interaction._index.codec import ResidualCodec
from late_interaction.config import IndexConfig
from late_interaction.exceptions import IndexFormatError

COMPRESSED_FORMAT_VERSION = 2
CODEC_FILES = {
    "centroids": "codec_centroids.npy",
    "cutoffs": "codec_cutoffs.npy",
    "weights": "codec_weights.npy",
}
IVF_FILES = ("ivf_offsets.npy", "ivf_slots.npy")


def codec_record(codec: ResidualCodec) -> dict[str, Any]:
    """The manifest's ``codec`` entry for ``codec``."""
    return {
        "kind": "residual",
        "nbits": codec.nbits,
        "n_centroids": codec.n_centroids,
        "dim": codec.dim,
        "checksum": codec.checksum(),
    }


def load_array(file: Path) -> np.ndarray:
    """``np.load`` a compressed folder's array memory-mapped, damage as IndexFormatError."""
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        msg = f"cannot read {file}: {exc}. The index folder is damaged; rebuild it."
        raise IndexFormatError(msg, COMPRESSED_FORMAT_VERSION) from exc


def read_codec(
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
        msg = f"{path / MANIFEST_FILE} records no residual codec ({record!r}); rebuild the index."
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
    arrays = {key: np.array(load_array(path / name)) for key, name in CODEC_FILES.items()}
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
