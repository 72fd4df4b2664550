"""LateInteractionIndex: a durable store of documents searchable by exact late interaction.

Search is two-stage, as colbert-live: every query token fetches its nearest document tokens from
a Voyager HNSW graph (candidate generation), then the union of their documents is scored by
exact MaxSim on the token store (float16/float32 copies of the encoder output, never vectors
read back from Voyager). With ``IndexConfig(nbits=1|2|4)`` the store is compressed as ColBERTv2
does (centroid id + residual bits per token, ``_index/codec.py``) and candidates come from the
centroids as in PLAID (``_index/centroid_candidates.py``): no per-token graph, and exact MaxSim
on the decoded vectors of the best candidates. With a ``dense_weight`` > 0 encoder, each document
also keeps one dense vector (``_index/dense_store.py``) and hits rank by MaxSim fused with the
dense cosine (``late_interaction.fusion``). The machinery lives in the private ``_index``
package: ``state.py`` (writes and snapshots), ``search_api.py`` and ``write_api.py`` (the search
and ``add_embeddings`` methods this class inherits), ``search.py`` and ``candidates.py`` (the read
path), ``persistence.py`` (the folder).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from late_interaction._index.atomic import as_folder_path
from late_interaction._index.document_store import validate_documents
from late_interaction._index.encoder_identity import index_model
from late_interaction._index.maintenance import MaintenanceMethods
from late_interaction._index.persistence import encode_extra_files, read_index, write_index
from late_interaction._index.search_api import SearchMethods
from late_interaction._index.state import IndexState
from late_interaction._index.write_api import WriteMethods
from late_interaction._validation import as_list, as_texts
from late_interaction.config import IndexConfig
from late_interaction.types import Encoder, StoredDocument

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["LateInteractionIndex"]

_PROGRESS_MIN_TEXTS = 1000  # show a progress bar by default from this many texts on
_ADD_CHUNK = 256  # documents encoded and appended per step of add() (published once)


class LateInteractionIndex(SearchMethods, WriteMethods, MaintenanceMethods):
    """A searchable, saveable collection of documents encoded by a ColBERT model.

    Args:
        model: An :class:`~late_interaction.Encoder` (``late_interaction.ColBERT`` or any object
            with ``encode_queries``, ``encode_documents``, ``fingerprint()`` and ``dim``). None
            loads the embedded default model (``ColBERT.from_pretrained()``) on first use.
        path: Default folder for :meth:`save`; must not already hold an index (use :meth:`load`).
        config: Storage and search settings; defaults to ``IndexConfig()``.
        device: Where searches score documents: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a
            ``torch.device``. None (the default) follows the encoder's device (CPU until an
            encoder is loaded). On a GPU, the token store is copied to device memory on the first
            search (and kept in step with later writes), and exact MaxSim, decompression and
            ``exact=True`` scans run there; candidates still come from the CPU-side HNSW or
            centroid lists. See the README's "GPU search".

    Raises:
        FileExistsError: If ``path`` already holds a saved index.
        TypeError: If ``config`` is not an ``IndexConfig``.
        ValueError: If ``device`` is not a device, or names CUDA where there is none.

    Example:
        >>> index = LateInteractionIndex()  # doctest: +SKIP
        >>> _ = index.add(["ColBERT scores tokens.", "BM25 counts."])  # doctest: +SKIP
        >>> index.search("token-level matching", k=1)[0].text  # doctest: +SKIP
        'ColBERT scores tokens.'

    .. warning::
        Candidate generation is approximate (HNSW): a document that no query token reaches is
        never scored. Raise ``k_token``/``query_ef`` for recall, or search with ``exact=True``.
        Deleted documents keep their space until :meth:`compact`.
    """

    def __init__(
        self,
        model: Encoder | None = None,
        path: str | Path | None = None,
        *,
        config: IndexConfig | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        config = config if config is not None else IndexConfig()
        if not isinstance(config, IndexConfig):
            msg = f"config must be an IndexConfig; got {type(config).__name__}."
            raise TypeError(msg)
        self.path = as_folder_path(path) if path is not None else None
        if self.path is not None and (self.path / "config.json").exists():
            msg = (
                f"{self.path} already holds a saved index; open it with "
                "LateInteractionIndex.load(path) or choose another folder."
            )
            raise FileExistsError(msg)
        self._model = model
        self._model_lock = threading.Lock()
        self._state = IndexState(config)
        self._device = _resolve_device(device)

    @property
    def config(self) -> IndexConfig:
        """Storage and search settings (fixed for the index's life)."""
        return self._state.config

    @property
    def model(self) -> Encoder:
        """The encoder; the embedded default ColBERT is loaded on first access if none was given."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    from late_interaction.encoder import ColBERT

                    self._model = ColBERT.from_pretrained()
        return self._model

    @property
    def dim(self) -> int:
        """Token vector dimension (the encoder's)."""
        return int(self.model.dim)

    def __len__(self) -> int:
        return self._state.snap.n_live

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self._state.resolve([doc_id])[1][0] is not None

    def __repr__(self) -> str:
        return f"LateInteractionIndex(documents={len(self)}, path={self.path!r})"

    @property
    def ids(self) -> list[str]:
        """Ids of live documents, in storage order (an upserted document moves to the end)."""
        snap = self._state.snap
        return [snap.docs.ids[s] for s in np.flatnonzero(snap.live).tolist()]  # type: ignore[misc]

    def get(self, ids: str | Iterable[str]) -> list[StoredDocument]:
        """Return stored documents (metadata copied) by id, in the order asked.

        Raises:
            KeyError: Listing every id that is not in the index.
        """
        return self._state.get(as_list(ids, "ids"))

    def add(
        self,
        texts: str | Sequence[str],
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[str]:
        """Encode and add documents; an id already in the index is replaced (upsert).

        Whole or not at all: a search sees none or all of the call, and anything raised inside
        (a bad item, the encoder, ``KeyboardInterrupt``) leaves the index as it was.

        Args:
            texts: Document texts (a bare string is one document).
            ids: One unique string id per text; None generates uuid4 hex ids.
            metadatas: One JSON-serialisable dict (or None) per text; stored as its JSON round
                trip (tuples become lists).
            batch_size: Encoder batch size.
            show_progress_bar: tqdm bar; None shows it from 1000 texts on.

        Returns:
            The ids of the added documents, in input order.

        Raises:
            ValueError: On length mismatches, duplicate ids, non-JSON or too deeply nested
                metadata, or a string that is not valid Unicode; nothing is added then.
            TypeError: On non-string texts or ids.
        """
        texts = as_texts(texts, "texts")
        id_list, metas = validate_documents(texts, ids, metadatas)
        if not texts:
            return []
        show = len(texts) >= _PROGRESS_MIN_TEXTS if show_progress_bar is None else show_progress_bar
        encode = self._encode_documents(texts, batch_size)
        return self._state.add(
            self.dim, encode, texts, id_list, metas, show_progress_bar=show, chunk=_ADD_CHUNK
        )

    def delete(self, ids: str | Iterable[str]) -> None:
        """Delete documents by id (their space is reclaimed by :meth:`compact`).

        Raises:
            KeyError: Listing every id that is not in the index; nothing is deleted then.
        """
        wanted = list(dict.fromkeys(as_list(ids, "ids")))
        with self._state.write_lock:
            self._state.delete(wanted)

    def save(self, path: str | Path | None = None, *, extra_files: Any = None) -> Path:
        """Write the index to a folder, atomically; pickle-free (JSON, .npy, Voyager's file).

        A crash at any point leaves the previously saved folder loadable. Searches may run
        during a save; writes wait for it.

        Args:
            path: Target folder; defaults to the ``path`` given at construction or load.
            extra_files: ``{"name.json": JSON value}`` written in the same atomic swap (how the
                adapters keep their retriever settings with the index).

        Returns:
            The absolute folder path.

        Raises:
            ValueError: If no path was given now or before, or an extra file name is not a
                plain ``*.json`` name.
            TypeError: If an extra file's value is not JSON-serialisable.
            FileExistsError: If ``path`` is a non-empty folder that holds no index.
        """
        target = as_folder_path(path) if path is not None else self.path
        if target is None:
            msg = "save() needs a path: pass index.save(path) or construct the index with path=."
            raise ValueError(msg)
        extra = encode_extra_files({} if extra_files is None else extra_files)
        state = self._state
        with state.write_lock:
            saved = write_index(
                target, config=self.config, fingerprint=self.model.fingerprint(), dim=self.dim,
                store=state.store, docs=state.docs, live=state.snap.live, hnsw=state.hnsw,
                ivf=state.ivf, extra_files=extra, dense_weight=self.dense_weight,
            )  # fmt: skip
        if self.path is None:
            self.path = saved
        return saved

    @classmethod
    def load(
        cls,
        path: str | Path,
        model: Encoder | None = None,
        *,
        device: str | torch.device | None = None,
        trust_remote_model: bool = False,
        verify: bool = True,
    ) -> LateInteractionIndex:
        """Open a folder written by :meth:`save` (token store memory-mapped, read-only).

        An interrupted save is recovered first (to the old or the new complete state); files
        are checked against their recorded checksums before use; a concurrent save is no damage.

        Args:
            path: The index folder.
            model: The encoder that built it; None rebuilds it from the saved fingerprint.
            device: Where searches score documents (see the constructor), and where the encoder
                rebuilt for ``model=None`` runs. None: the encoder's device (for a rebuilt
                encoder, the core's choice: cuda > mps > cpu).
            trust_remote_model: With ``model=None``, allow rebuilding an encoder the folder
                names by Hub id (a folder from elsewhere could name any repository).
            verify: Also hash the memory-mapped token arrays; False skips only those.

        Returns:
            The index; later :meth:`save` calls default to ``path``.

        Raises:
            FileNotFoundError: If nothing was saved at ``path``.
            IndexFormatError: If files are missing, damaged or of an unknown format version.
            DimensionMismatchError: If ``model`` produces vectors of another dimension.
            ModelMismatchError: If ``model`` is not the encoder that built the index.
            ValueError: If ``model`` is None and the saved fingerprint names no checkpoint, or
                a Hub model without ``trust_remote_model``; or ``device`` is not a device.
        """
        _resolve_device(device)  # a bad device fails before any file is read
        path = as_folder_path(path)
        loaded = read_index(path, verify=verify)
        model = index_model(loaded.manifest, path, model, device, trust_remote_model)
        self = cls(model, config=loaded.config, device=device)
        self.path = path
        self._state = IndexState.from_loaded(loaded)
        _ = self.dense_weight  # says once if it ranks without dense vectors; raises if it must
        return self


def _resolve_device(device: Any) -> torch.device | None:
    if device is None:  # the common case imports no torch
        return None
    from late_interaction._index.device_search import resolve_device

    return resolve_device(device)
