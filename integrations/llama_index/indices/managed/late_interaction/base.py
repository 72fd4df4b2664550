"""LateInteractionManagedIndex: a LlamaIndex index whose nodes are searched by ColBERT MaxSim."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.data_structs.data_structs import IndexDict
from llama_index.core.data_structs.registry import INDEX_STRUCT_TYPE_TO_INDEX_STRUCT_CLASS
from llama_index.core.indices.base import BaseIndex
from llama_index.core.indices.managed.base import BaseManagedIndex
from llama_index.core.indices.registry import INDEX_STRUCT_TYPE_TO_INDEX_CLASS
from llama_index.core.ingestion import run_transformations
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, Document, TransformComponent
from llama_index.core.storage.docstore.types import RefDocInfo
from llama_index.core.storage.storage_context import DEFAULT_PERSIST_DIR, StorageContext

from late_interaction import IndexConfig, LateInteractionIndex, resolve_model
from late_interaction._encoding.resolve import open_index
from llama_index.retrievers.late_interaction import ColBERTRetriever
from llama_index.retrievers.late_interaction._translate import as_nodes

if TYPE_CHECKING:
    from late_interaction import ColBERT, Encoder

logger = logging.getLogger(__name__)

STRUCT_TYPE = "late_interaction"
_RETRIEVER_ARGS = frozenset(inspect.signature(ColBERTRetriever.__init__).parameters) - {"self"}
CORE_DIR = "late_interaction"  # the core index folder inside a persist_dir


@dataclass
class LateInteractionIndexDict(IndexDict):
    """The node ids of a :class:`LateInteractionManagedIndex`, and where its token index lives.

    Attributes:
        core_path: Absolute folder of the core index, recorded at the last persist.
    """

    core_path: str | None = None

    @classmethod
    def get_type(cls) -> Any:
        """The struct type LlamaIndex's loader looks up (registered on import)."""
        return STRUCT_TYPE


@dataclass
class _CoreStorageContext(StorageContext):
    """A ``StorageContext`` whose ``persist`` also saves the core index (in ``late_interaction/``).

    Why: ``index.storage_context.persist(persist_dir)`` is how LlamaIndex users save an index,
    and the token index is not one of the stores a ``StorageContext`` knows.
    """

    core: LateInteractionIndex | None = None
    struct: LateInteractionIndexDict | None = None

    def persist(self, persist_dir: str | Path = DEFAULT_PERSIST_DIR, **kwargs: Any) -> None:
        """Persist the core index, then the docstore, index store and other stores."""
        if kwargs.get("fs") is not None:
            msg = "LateInteractionManagedIndex persists to a local folder; fsspec is not supported."
            raise NotImplementedError(msg)
        if self.core is not None and self.struct is not None:
            self.struct.core_path = str(self.core.save(Path(persist_dir) / CORE_DIR))
            self.index_store.add_index_struct(self.struct)
        super().persist(persist_dir, **kwargs)


def _core_storage(storage_context: StorageContext | None) -> _CoreStorageContext:
    sc = storage_context or StorageContext.from_defaults()
    if isinstance(sc, _CoreStorageContext):
        return sc
    return _CoreStorageContext(
        docstore=sc.docstore,
        index_store=sc.index_store,
        vector_stores=sc.vector_stores,
        graph_store=sc.graph_store,
        property_graph_store=sc.property_graph_store,
    )


class LateInteractionManagedIndex(BaseManagedIndex):
    """A LlamaIndex index over ColBERT token matrices (per-token ANN, then exact MaxSim).

    Nodes live in the storage context's docstore as with any index, and their token matrices in
    a :class:`late_interaction.LateInteractionIndex`. Supports ``insert``, ``delete_ref_doc``,
    ``update_ref_doc``, ``refresh_ref_docs`` (re-encodes only documents whose hash changed),
    ``as_retriever`` / ``as_query_engine`` / ``as_chat_engine`` and
    ``storage_context.persist(persist_dir)`` then ``load_index_from_storage``.

    Instantiate (in a clone ``pip install ".[llama-index]"``; see the README's Install section):
        .. code-block:: python

            from llama_index.indices.managed.late_interaction import LateInteractionManagedIndex

            index = LateInteractionManagedIndex.from_documents(documents, model=None)
            engine = index.as_query_engine(llm=llm, similarity_top_k=5)
            index.storage_context.persist("storage")
            # later (after importing this package, which registers the index type):
            index = load_index_from_storage(StorageContext.from_defaults(persist_dir="storage"))

    Args:
        nodes: Nodes to index now.
        index_struct: Used by LlamaIndex's loader; leave None.
        storage_context: Docstore and index store (default: in-memory).
        index: A core index to use (e.g. one already built); None builds or loads one.
        model: Checkpoint name or path, a loaded ``ColBERT``, or None (the embedded default).
        device: Device for a model loaded by name.
        index_config: ``late_interaction.IndexConfig`` of a new core index.
        persist_dir: When loading, the folder given to ``persist`` (default: the path recorded
            at persist time).
        trust_remote_model: When loading with ``model=None``, allow rebuilding an encoder the
            folder names by Hub id (a folder from elsewhere could name any repository).
        verify: When loading, also hash the memory-mapped token arrays.
        batch_size: Encoding batch size.
        show_progress, callback_manager, transformations, **kwargs: As ``BaseIndex``.
    """

    index_struct_cls = LateInteractionIndexDict

    def __init__(
        self,
        nodes: list[BaseNode] | None = None,
        index_struct: LateInteractionIndexDict | None = None,
        storage_context: StorageContext | None = None,
        *,
        index: LateInteractionIndex | None = None,
        model: str | ColBERT | Encoder | None = None,
        device: str | None = None,
        index_config: IndexConfig | None = None,
        persist_dir: str | Path | None = None,
        trust_remote_model: bool = False,
        verify: bool = True,
        batch_size: int = 32,
        show_progress: bool = False,
        callback_manager: CallbackManager | None = None,
        transformations: list[TransformComponent] | None = None,
        **kwargs: Any,
    ) -> None:
        if index is None and index_struct is not None:
            index = _load_core(index_struct, persist_dir, model, device, trust_remote_model, verify)
        elif index is None:
            index = LateInteractionIndex(resolve_model(model, device=device), config=index_config)
        self._core = index
        # Inserts go through the retriever's node translation (text, id, serialised node).
        self._writer = ColBERTRetriever(index, similarity_top_k=1)
        self._batch_size = batch_size
        storage = _core_storage(storage_context)
        storage.core = index
        nodes = None if nodes is None else as_nodes(nodes, "nodes")
        super().__init__(
            nodes=nodes if nodes is not None or index_struct is not None else [],
            index_struct=index_struct,
            storage_context=storage,
            show_progress=show_progress,
            callback_manager=callback_manager,
            transformations=transformations,
            **kwargs,
        )
        storage.struct = self._index_struct

    @classmethod
    def from_documents(  # type: ignore[override]
        cls,
        documents: list[Document],
        storage_context: StorageContext | None = None,
        show_progress: bool = False,
        callback_manager: CallbackManager | None = None,
        transformations: list[TransformComponent] | None = None,
        *,
        model: str | ColBERT | Encoder | None = None,
        device: str | None = None,
        **kwargs: Any,
    ) -> LateInteractionManagedIndex:
        """Split documents into nodes and index them.

        Args:
            documents: The documents.
            storage_context: Docstore and index store (default: in-memory).
            show_progress: Show progress bars.
            callback_manager: LlamaIndex callbacks.
            transformations: Node parsers; default a ``SentenceSplitter`` whose chunks fit the
                encoder's ``document_length`` (text beyond it would be cut off).
            model: Checkpoint name or path, a loaded ``ColBERT``, or None (the embedded default).
            device: Device for a model loaded by name.
            **kwargs: Other constructor arguments (``index_config``, ``batch_size``...).
        """
        encoder = resolve_model(model, device=device)
        if transformations is None:
            size = getattr(getattr(encoder, "config", None), "document_length", None)
            transformations = [
                SentenceSplitter()
                if size is None
                else SentenceSplitter(chunk_size=size, chunk_overlap=size // 8)
            ]
        documents = as_nodes(documents, "documents")
        storage = _core_storage(storage_context)
        for doc in documents:
            storage.docstore.set_document_hash(doc.id_, doc.hash)
        nodes = run_transformations(documents, transformations, show_progress=show_progress)
        return cls(
            nodes=nodes,
            storage_context=storage,
            model=encoder,
            show_progress=show_progress,
            callback_manager=callback_manager,
            transformations=transformations,
            **kwargs,
        )

    @property
    def core_index(self) -> LateInteractionIndex:
        """The core token index (shared: writes through it bypass the docstore)."""
        return self._core

    def _build_index_from_nodes(
        self, nodes: list[BaseNode], **build_kwargs: Any
    ) -> LateInteractionIndexDict:
        struct = LateInteractionIndexDict()
        self._insert_into(struct, nodes)
        return struct

    def insert(self, document: Document, **insert_kwargs: Any) -> None:
        """Split a LlamaIndex ``document`` into nodes and index them (``BaseIndex.insert``)."""
        super().insert(as_nodes(document, "document")[0], **insert_kwargs)

    def insert_nodes(self, nodes: list[BaseNode], **insert_kwargs: Any) -> None:
        """Index LlamaIndex nodes (one node counts as one) as ``BaseIndex.insert_nodes``."""
        super().insert_nodes(as_nodes(nodes, "nodes"), **insert_kwargs)

    def _insert(self, nodes: list[BaseNode], **insert_kwargs: Any) -> None:
        self._insert_into(self._index_struct, nodes)

    def _insert_into(self, struct: LateInteractionIndexDict, nodes: list[BaseNode]) -> None:
        if nodes:
            # BaseIndex's show_progress defaults to False: that leaves the core's choice (a bar
            # from 1000 nodes on); True shows one for any insert.
            show = True if self._show_progress else None
            self._writer.insert_nodes(nodes, batch_size=self._batch_size, show_progress=show)
        for node in nodes:
            struct.add_node(node)

    def _delete_node(self, node_id: str, **delete_kwargs: Any) -> None:
        if node_id in self._core:
            self._core.delete(node_id)
        self._index_struct.nodes_dict.pop(node_id, None)

    def delete_ref_doc(
        self, ref_doc_id: str, delete_from_docstore: bool = False, **delete_kwargs: Any
    ) -> None:
        """Delete every node of the source document ``ref_doc_id`` (no re-encoding)."""
        BaseIndex.delete_ref_doc(self, ref_doc_id, delete_from_docstore, **delete_kwargs)

    def update_ref_doc(self, document: Document, **update_kwargs: Any) -> None:
        """Replace a source document's nodes: delete them, split and encode the new text."""
        BaseIndex.update_ref_doc(self, document, **update_kwargs)

    @property
    def ref_doc_info(self) -> dict[str, RefDocInfo]:
        """Source documents of the indexed nodes, with their node ids."""
        info: dict[str, RefDocInfo] = {}
        for node in self.docstore.get_nodes(list(self._index_struct.nodes_dict.values())):
            if node.ref_doc_id is not None:
                ref = self.docstore.get_ref_doc_info(node.ref_doc_id)
                if ref is not None:
                    info[node.ref_doc_id] = ref
        return info

    def as_retriever(self, **kwargs: Any) -> ColBERTRetriever:
        """A :class:`ColBERTRetriever` over this index (``similarity_top_k``, ``filters``...).

        Args:
            **kwargs: ``ColBERTRetriever`` arguments. Others are left to the caller: LlamaIndex's
                ``as_query_engine`` / ``as_chat_engine`` pass their engine arguments
                (``node_postprocessors``, ``memory``...) here too, as ``VectorStoreIndex``'s
                retriever also lets them through.
        """
        own = {k: v for k, v in kwargs.items() if k in _RETRIEVER_ARGS}
        return ColBERTRetriever(self._core, **own)


def _load_core(
    struct: LateInteractionIndexDict,
    persist_dir: str | Path | None,
    model: Any,
    device: Any,
    trust_remote_model: bool,
    verify: bool,
) -> LateInteractionIndex:
    """Open the core index a persisted struct points to (or ``persist_dir/late_interaction``)."""
    if persist_dir is not None:
        path = Path(persist_dir) / CORE_DIR
    elif struct.core_path is not None:
        path = Path(struct.core_path)
    else:
        msg = "this index was never persisted; nothing to load. Build it from documents."
        raise ValueError(msg)
    if not path.is_dir():
        msg = (
            f"the token index of this LateInteractionManagedIndex is not at {path} (the folder "
            "moved?): pass load_index_from_storage(..., persist_dir=<the folder persisted to>)."
        )
        raise FileNotFoundError(msg)
    return open_index(
        path, model, device=device, trust_remote_model=trust_remote_model, verify=verify
    )


# Registration with LlamaIndex's loader: load_index_from_storage maps a persisted struct's type to
# its struct class and index class through these two registries, which know only the built-in
# indexes. Adding our type (a new key; nothing existing is replaced) lets the standard
# persist / load_index_from_storage round trip work once this package is imported.
INDEX_STRUCT_TYPE_TO_INDEX_STRUCT_CLASS.setdefault(STRUCT_TYPE, LateInteractionIndexDict)  # type: ignore[arg-type]
INDEX_STRUCT_TYPE_TO_INDEX_CLASS.setdefault(STRUCT_TYPE, LateInteractionManagedIndex)  # type: ignore[arg-type]
