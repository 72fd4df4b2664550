"""QdrantIndex: the late-interaction index kept in a Qdrant collection (native MaxSim).

Same operations and results as :class:`~late_interaction.LateInteractionIndex` (both satisfy
:class:`~late_interaction.SearchableIndex`), with Qdrant doing the storage, the filtering and
the MaxSim scoring, in process (``QdrantClient(":memory:")`` or ``path=...``) or on a server or
cluster (``QdrantClient(url=..., api_key=...)``) that shards and replicates the collection.
Needs ``qdrant-client`` (the ``qdrant`` extra). The collection layout, manifest and point ids
are in ``_qdrant/collection.py``; requests in ``_qdrant/search.py``; filters in
``_qdrant/filters.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from late_interaction._index.document_store import validate_documents
from late_interaction._index.encoder_identity import check_model, model_from_fingerprint
from late_interaction._optional import require
from late_interaction._validation import as_list, as_texts, as_token_matrices, positive_int
from late_interaction.types import Encoder, StoredDocument

require("qdrant_client", "qdrant")

from qdrant_client import QdrantClient, models  # noqa: E402

from late_interaction._qdrant import collection as layout  # noqa: E402
from late_interaction._qdrant.search import QdrantSearchMethods  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

__all__ = ["QdrantIndex"]

logger = logging.getLogger(__name__)
_CHUNK = 256  # documents encoded per step
# Floats per upsert request: a server's default request limit is 32 MB and JSON spends ~10
# bytes a float, so 256 documents of 300 x 384 tokens must go in several requests.
_REQUEST_FLOATS = 1_500_000


def _rebuild_model(manifest: dict[str, Any], where: str) -> Encoder:
    """The encoder recorded in a collection's manifest (``model=None``)."""
    try:
        # dense=0: Qdrant ranks by MaxSim alone, so the rebuilt encoder fuses no dense score.
        return model_from_fingerprint(manifest.get("encoder") or {}, where, dense=0.0)  # type: ignore[arg-type]
    except ValueError as exc:  # a custom encoder: its fingerprint names no checkpoint
        msg = f"{exc} For a Qdrant collection: QdrantIndex(model, client=..., collection_name=...)."
        raise ValueError(msg) from exc


class QdrantIndex(QdrantSearchMethods):
    """A late-interaction index whose documents live in a Qdrant collection.

    Opening an existing collection reuses its settings and checks the encoder against the
    fingerprint stored in the collection's metadata.

    Args:
        model: An :class:`~late_interaction.Encoder` (a ``ColBERT``). None: the encoder recorded
            in an existing collection, else the embedded default model.
        client: A ``qdrant_client.QdrantClient``; None makes an in-memory local one
            (``QdrantClient(":memory:")``, gone with the process).
        collection_name: The collection; created on first use, reopened if it exists.
        first_stage: ``"none"`` (Qdrant's MaxSim over the multivector and its HNSW graph) or
            ``"mean"`` (a pooled vector per document finds ``prefetch_limit`` candidates, which
            MaxSim rescores; the multivector keeps no HNSW graph). None: the existing
            collection's setting, else ``"none"``.
        prefetch_limit: Candidates the ``"mean"`` first stage hands to MaxSim (per query).
        collection_options: Extra ``create_collection`` arguments for a new collection, e.g.
            ``{"shard_number": 4, "replication_factor": 2, "on_disk_payload": True}``.

    Raises:
        ValueError: If the collection exists but is not a late-interaction one, or
            ``first_stage`` contradicts the existing collection.
        DimensionMismatchError, ModelMismatchError: If ``model`` is not the encoder that built
            the existing collection.

    Example:
        >>> from qdrant_client import QdrantClient  # doctest: +SKIP
        >>> index = QdrantIndex(client=QdrantClient(path="qdrant_db"))  # doctest: +SKIP
        >>> _ = index.add(["ColBERT scores tokens.", "BM25 counts."])  # doctest: +SKIP
        >>> index.search("token-level matching", k=1)[0].text  # doctest: +SKIP
        'ColBERT scores tokens.'
    """

    def __init__(
        self,
        model: Encoder | None = None,
        *,
        client: QdrantClient | None = None,
        collection_name: str = "late_interaction",
        first_stage: str | None = None,
        prefetch_limit: int = 100,
        collection_options: Mapping[str, Any] | None = None,
    ) -> None:
        if first_stage is not None and first_stage not in layout.FIRST_STAGES:
            msg = f"first_stage must be one of {layout.FIRST_STAGES} or None; got {first_stage!r}."
            raise ValueError(msg)
        self.client = client if client is not None else QdrantClient(":memory:")
        self.collection_name = collection_name
        self.prefetch_limit = positive_int(prefetch_limit, "prefetch_limit")
        where = f"Qdrant collection {collection_name!r}"
        manifest = layout.read_manifest(self.client, collection_name)
        if manifest is None:
            from late_interaction._encoding.resolve import resolve_model

            self.model = resolve_model(model)
            manifest = layout.create_collection(
                self.client, collection_name, dim=int(self.model.dim),
                fingerprint=self.model.fingerprint(), first_stage=first_stage or "none",
                options=collection_options or {},
            )  # fmt: skip
            logger.info("created Qdrant collection %r (%s)", collection_name, manifest)
        else:
            if first_stage is not None and first_stage != manifest["first_stage"]:
                msg = (
                    f"{where} was built with first_stage={manifest['first_stage']!r}; pass that "
                    f"(or None), or build another collection for first_stage={first_stage!r}."
                )
                raise ValueError(msg)
            if model is None:
                model = _rebuild_model(manifest, where)
            check_model(manifest, model, where)  # type: ignore[arg-type]
            self.model = model
        self.first_stage: str = manifest["first_stage"]

    @property
    def dim(self) -> int:
        """Token vector dimension (the encoder's)."""
        return int(self.model.dim)

    def __len__(self) -> int:
        return int(self.client.count(self.collection_name, exact=True).count)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and bool(self._records([doc_id]))

    def __repr__(self) -> str:
        return f"QdrantIndex(collection_name={self.collection_name!r}, documents={len(self)})"

    @property
    def ids(self) -> list[str]:
        """Ids of all documents (in Qdrant's point-id order)."""
        out: list[str] = []
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection_name, limit=1024, offset=offset, with_payload=[layout.ID_KEY]
            )
            out.extend(r.payload[layout.ID_KEY] for r in records)
            if offset is None:
                return out

    def get(self, ids: str | Iterable[str]) -> list[StoredDocument]:
        """Return stored documents by id, in the order asked.

        Raises:
            KeyError: Listing every id that is not in the collection.
        """
        wanted = as_list(ids, "ids")
        found = self._records(wanted)
        missing = [i for i in wanted if i not in found]
        if missing:
            msg = f"ids not in the index: {missing[:20]}"
            raise KeyError(msg)
        return [found[i] for i in wanted]

    def add(
        self,
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[str]:
        """Encode and upsert documents (an id already in the collection is replaced).

        Args:
            texts: Document texts (a bare string is one document).
            ids: One unique string id per text; None generates uuid4 hex ids.
            metadatas: One JSON-serialisable dict (or None) per text.
            batch_size: Encoder batch size.
            show_progress_bar: The encoder's tqdm bar (None: the encoder's default).

        Returns:
            The ids, in input order.

        Raises:
            ValueError: On length mismatches, duplicate ids, or non-JSON metadata.
            TypeError: On non-string texts or ids.
        """
        texts = as_texts(texts, "texts")
        id_list, metas = validate_documents(texts, ids, metadatas)
        for start in range(0, len(texts), _CHUNK):
            chunk = texts[start : start + _CHUNK]
            embs = self.model.encode_documents(
                chunk, batch_size=batch_size, show_progress_bar=show_progress_bar
            )
            matrices = as_token_matrices(embs, self.dim, "embeddings")
            end = start + len(chunk)
            self._upsert(id_list[start:end], chunk, metas[start:end], matrices)
        return id_list

    def add_embeddings(
        self,
        embeddings: Sequence[Any],
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Upsert documents whose token matrices were computed already (by this encoder).

        Args:
            embeddings: One ``(n_tokens_i, dim)`` matrix per document.
            texts: The texts they encode.
            ids: As in :meth:`add`.
            metadatas: As in :meth:`add`.

        Returns:
            The ids, in input order.

        Raises:
            DimensionMismatchError: If a matrix's dim differs from the encoder's.
            ValueError: On empty or non-finite matrices, or any :meth:`add` validation error.
        """
        texts = as_texts(texts, "texts")
        embeddings = list(embeddings)
        if len(embeddings) != len(texts):
            msg = f"got {len(embeddings)} embeddings for {len(texts)} texts; pass one per text."
            raise ValueError(msg)
        id_list, metas = validate_documents(texts, ids, metadatas)
        matrices = as_token_matrices(embeddings, self.dim, "embeddings")
        for start in range(0, len(texts), _CHUNK):
            end = start + _CHUNK
            batch = (id_list[start:end], texts[start:end], metas[start:end], matrices[start:end])
            self._upsert(*batch)
        return id_list

    def delete(self, ids: str | Iterable[str]) -> None:
        """Delete documents by id.

        Raises:
            KeyError: Listing every id that is not in the collection; nothing is deleted then.
        """
        wanted = list(dict.fromkeys(as_list(ids, "ids")))
        self.get(wanted)  # raises KeyError before anything is deleted
        if wanted:
            selector = models.PointIdsList(points=[layout.point_id(i) for i in wanted])
            self.client.delete(self.collection_name, points_selector=selector, wait=True)

    def save(self, path: str | Path | None = None, *, extra_files: Any = None) -> Path:
        """Not available: the collection is the persistent state (Qdrant persists it).

        Raises:
            TypeError: Always, saying how to reopen the collection instead.
        """
        msg = (
            "a QdrantIndex persists in its Qdrant collection, not in a folder: reopen it with "
            f"QdrantIndex(client=..., collection_name={self.collection_name!r}) (local mode: "
            "QdrantClient(path=...)) and pass it to the retriever."
        )
        raise TypeError(msg)

    def _records(self, ids: list[str]) -> dict[str, StoredDocument]:
        records = self.client.retrieve(
            self.collection_name, [layout.point_id(i) for i in ids], with_payload=True
        )
        return {
            r.payload[layout.ID_KEY]: StoredDocument(
                id=r.payload[layout.ID_KEY],
                text=r.payload[layout.TEXT_KEY],
                metadata=dict(r.payload.get("metadata") or {}),
            )
            for r in records
        }

    def _upsert(self, ids: list[str], texts: list[str], metas: list[Any], matrices: list) -> None:
        bounds, floats = [0], 0
        for i, matrix in enumerate(matrices):
            if floats and floats + matrix.size > _REQUEST_FLOATS:
                bounds.append(i)
                floats = 0
            floats += matrix.size
        bounds.append(len(matrices))
        for start, end in pairwise(bounds):
            part = slice(start, end)
            batch = layout.points(
                ids[part], texts[part], metas[part], matrices[part], self.first_stage
            )
            self.client.upsert(self.collection_name, points=batch, wait=True)
