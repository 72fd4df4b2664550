"""Which encoder an index belongs to: refuse another one, rebuild the recorded one.

A saved index records its encoder's fingerprint (``ColBERT.fingerprint()``): equal fingerprints
mean equal embeddings, so loading checks the given model against it, or rebuilds the model from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from late_interaction.config import EncoderConfig
from late_interaction.exceptions import (
    CheckpointFormatError,
    CheckpointNotFoundError,
    DimensionMismatchError,
    ModelMismatchError,
)
from late_interaction.types import Encoder


def jsonable(value: Any) -> Any:
    """``value`` as its JSON round trip (what a manifest stores and compares)."""
    return json.loads(json.dumps(value, sort_keys=True))


def check_model(manifest: dict[str, Any], model: Encoder, path: Path) -> None:
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
    saved, given = manifest.get("encoder"), jsonable(model.fingerprint())
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


def index_model(
    manifest: dict[str, Any],
    path: Path,
    model: Encoder | None,
    device: str | None,
    trust_remote_model: bool,
) -> Encoder:
    """The encoder of a loaded index: ``model`` checked against it, or the recorded one rebuilt.

    Raises:
        As :func:`check_model` and :func:`model_from_fingerprint`.
    """
    if model is None:
        fingerprint = manifest.get("encoder") or {}
        model = model_from_fingerprint(
            fingerprint,
            path,
            device=device,
            trust_remote_model=trust_remote_model,
            dense=manifest.get("dense_weight"),  # absent: saved before dense vectors
        )
    check_model(manifest, model, path)
    return model


def names_hub_model(name: str) -> bool:
    """Whether a recorded checkpoint name would be fetched from the Hugging Face Hub.

    Local checkpoints are recorded as absolute paths; a name that is no existing folder and
    does not look like a path is a Hub id (``ColBERT.from_pretrained`` would download it).
    """
    from late_interaction.encoder import DEFAULT_MODEL

    if name == DEFAULT_MODEL or Path(name).expanduser().exists():
        return False
    return not (name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).is_absolute())


def model_from_fingerprint(
    fingerprint: dict[str, Any],
    path: Path,
    *,
    device: str | None = None,
    trust_remote_model: bool = False,
    dense: Any = None,
) -> Encoder:
    """Rebuild the encoder an index was saved with (embedded default, local folder or hub id).

    Every encoding setting recorded in the fingerprint is passed explicitly, so the rebuilt
    encoder matches even where the checkpoint's own defaults would differ. Marker tokens the
    checkpoint lacks are added again (the recorded markers were the builder's explicit choice).
    ``dense`` is the ``dense_weight`` the index recorded (None: an index saved before dense
    vectors existed, which gets the checkpoint's own weight and then ranks without them).

    Raises:
        ValueError: If the fingerprint names no checkpoint (a custom encoder built the index),
            or names a Hub model and ``trust_remote_model`` is False.
        CheckpointFormatError: If the named checkpoint can no longer be loaded (moved, changed).
        CheckpointNotFoundError: If it no longer exists (or cannot be fetched: ConnectionError).
    """
    from late_interaction.encoder import DEFAULT_MODEL, ColBERT

    name = fingerprint.get("name_or_path")
    if not name:
        msg = (
            f"the index at {path} was built by an encoder that its fingerprint cannot rebuild "
            f"(no checkpoint name in {sorted(fingerprint)}). Pass it: "
            "LateInteractionIndex.load(path, model)."
        )
        raise ValueError(msg)
    if not trust_remote_model and names_hub_model(str(name)):
        msg = (
            f"the index at {path} names the Hugging Face Hub model {name!r}; loading it would "
            "download (or run from the cache) whatever that repository holds. Pass the encoder "
            f"yourself: LateInteractionIndex.load(path, ColBERT.from_pretrained({name!r})) (the "
            "adapters take model=...), or opt in with trust_remote_model=True if you trust it."
        )
        raise ValueError(msg)
    overrides = {key: fingerprint[key] for key in EncoderConfig.SETTINGS if key in fingerprint}
    overrides["dense_weight"] = dense
    try:
        return ColBERT.from_pretrained(
            None if name == DEFAULT_MODEL else name,
            device=device,
            add_missing_markers=True,
            **overrides,
        )
    except (CheckpointFormatError, CheckpointNotFoundError) as exc:
        msg = (
            f"cannot rebuild the encoder of the index at {path} from its saved fingerprint: "
            f"{exc} Pass it explicitly: LateInteractionIndex.load(path, model)."
        )
        raise type(exc)(msg) from exc
