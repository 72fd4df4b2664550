"""The Qdrant collection behind a ``QdrantIndex``: its layout, its manifest, its points.

Layout: a named multivector ``colbert`` (the document's token matrix, scored by Qdrant's
``MAX_SIM`` comparator with ``DOT`` distance, which is the core's :func:`~late_interaction.maxsim`)
and, with ``first_stage="mean"``, a named dense vector ``mean`` (the normalised mean of the token
vectors) that ``prefetch`` searches for candidates; the multivector then only rescores, so its
HNSW graph is disabled (``m=0``) as Qdrant's multivector guide advises.

Manifest: the collection's own ``metadata`` holds ``{"late_interaction": {...}}`` (format,
encoder fingerprint, dim, first stage), which is how a collection is reopened and checked
against the encoder that built it.

Points: Qdrant ids are unsigned ints or UUIDs, so a document id ``"doc-1"`` is stored under
``uuid5(NAMESPACE, "doc-1")`` with the id itself, the text and the metadata in the payload.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from late_interaction._index.encoder_identity import jsonable

__all__ = [
    "FIRST_STAGES",
    "MANIFEST_KEY",
    "MEAN",
    "MULTIVECTOR",
    "create_collection",
    "mean_vectors",
    "point_id",
    "points",
    "read_manifest",
]

MANIFEST_KEY = "late_interaction"
FORMAT = 1
MULTIVECTOR = "colbert"
MEAN = "mean"
FIRST_STAGES = ("none", "mean")
ID_KEY, TEXT_KEY = "doc_id", "text"
_NAMESPACE = uuid.UUID("8b5d0f4e-4c1a-5d7b-9a61-6c0c5e7a1f10")


def point_id(doc_id: str) -> str:
    """The Qdrant point id of a document id (a stable UUID)."""
    return str(uuid.uuid5(_NAMESPACE, doc_id))


def read_manifest(client: QdrantClient, name: str) -> dict[str, Any] | None:
    """The late-interaction manifest of collection ``name``; None if there is no collection.

    Raises:
        ValueError: If the collection exists but was not created by ``QdrantIndex``.
    """
    if not client.collection_exists(name):
        return None
    metadata = client.get_collection(name).config.metadata or {}
    manifest = metadata.get(MANIFEST_KEY)
    if not isinstance(manifest, Mapping) or manifest.get("format") != FORMAT:
        msg = (
            f"Qdrant collection {name!r} exists but was not created by late_interaction's "
            f"QdrantIndex (no {MANIFEST_KEY!r} format-{FORMAT} entry in its metadata). Choose "
            "another collection_name, or delete that collection if it is yours to replace."
        )
        raise ValueError(msg)
    return dict(manifest)


def create_collection(
    client: QdrantClient,
    name: str,
    *,
    dim: int,
    fingerprint: Mapping[str, Any],
    first_stage: str,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Create the collection and return its manifest.

    Args:
        client: The Qdrant client.
        name: Collection name.
        dim: Token vector dimension.
        fingerprint: The encoder's fingerprint (saved, checked on reopening).
        first_stage: ``"none"`` (MaxSim on the multivector, with its own HNSW graph) or
            ``"mean"`` (a pooled vector finds candidates; the multivector only rescores).
        options: Extra ``create_collection`` arguments (``shard_number``,
            ``replication_factor``, ``on_disk_payload``, ``quantization_config``...).
    """
    manifest = {
        "format": FORMAT, "dim": int(dim), "encoder": jsonable(dict(fingerprint)),
        "first_stage": first_stage,
    }  # fmt: skip
    multivector = models.VectorParams(
        size=int(dim),
        distance=models.Distance.DOT,  # on the encoder's unit vectors: cosine, and exact maxsim
        multivector_config=models.MultiVectorConfig(
            comparator=models.MultiVectorComparator.MAX_SIM
        ),
        # Rescoring only: building a per-token graph would cost what the first stage saves.
        hnsw_config=models.HnswConfigDiff(m=0) if first_stage == MEAN else None,
    )
    vectors = {MULTIVECTOR: multivector}
    if first_stage == MEAN:
        vectors[MEAN] = models.VectorParams(size=int(dim), distance=models.Distance.DOT)
    client.create_collection(
        name, vectors_config=vectors, metadata={MANIFEST_KEY: manifest}, **dict(options)
    )
    return manifest


def mean_vectors(matrices: Sequence[np.ndarray]) -> list[list[float]]:
    """The first-stage vector of each token matrix: the mean token, normalised to unit length."""
    out = []
    for matrix in matrices:
        mean = matrix.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        out.append((mean / norm if norm > 0 else mean).tolist())
    return out


def points(
    ids: Sequence[str],
    texts: Sequence[str],
    metadatas: Sequence[dict[str, Any]],
    matrices: Sequence[np.ndarray],
    first_stage: str,
) -> list[models.PointStruct]:
    """The points to upsert for these documents."""
    means = mean_vectors(matrices) if first_stage == MEAN else None
    out = []
    for i, (doc_id, text, meta, matrix) in enumerate(
        zip(ids, texts, metadatas, matrices, strict=True)
    ):
        vector: dict[str, Any] = {MULTIVECTOR: matrix.tolist()}
        if means is not None:
            vector[MEAN] = means[i]
        payload = {ID_KEY: doc_id, TEXT_KEY: text, "metadata": meta}
        out.append(models.PointStruct(id=point_id(doc_id), vector=vector, payload=payload))
    return out
