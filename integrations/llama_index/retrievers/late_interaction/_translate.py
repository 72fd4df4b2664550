"""Translate LlamaIndex inputs into what ``LateInteractionIndex`` takes: node sources, filters.

Filter semantics follow ``llama_index.core.vector_stores.utils.build_metadata_filter_fn`` (the
in-memory reference LlamaIndex uses for its simple stores), extended to nested
``MetadataFilters``. The tree is validated up front, so an unsupported operator or condition
fails before any search runs instead of being ignored.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.core.vector_stores.utils import node_to_metadata_dict

from late_interaction._validation import FROM_LANGCHAIN, as_items, check_unicode
from llama_index.retrievers.late_interaction._filter_mapping import LlamaIndexFilter

__all__ = [
    "as_nodes", "check_score_mode", "collect_nodes", "node_records", "scored_node", "to_predicate",
]  # fmt: skip

Predicate = Callable[[Mapping[str, Any]], bool]


def _text_match(value: Any, found: Any, fold: bool) -> bool:
    if not (isinstance(value, str) and isinstance(found, str)):
        msg = (
            f"TEXT_MATCH filters compare strings; got filter value {value!r} and metadata value "
            f"{found!r}. Use EQ/CONTAINS for non-string values."
        )
        raise TypeError(msg)
    return value.lower() in found.lower() if fold else value in found


_OPS: dict[FilterOperator, Callable[[Any, Any], bool]] = {
    # Each entry is (filter value, metadata value) -> bool.
    FilterOperator.EQ: lambda v, m: m == v,
    FilterOperator.NE: lambda v, m: m != v,
    FilterOperator.GT: lambda v, m: op.gt(m, v),
    FilterOperator.GTE: lambda v, m: op.ge(m, v),
    FilterOperator.LT: lambda v, m: op.lt(m, v),
    FilterOperator.LTE: lambda v, m: op.le(m, v),
    FilterOperator.IN: lambda v, m: m in v,
    FilterOperator.NIN: lambda v, m: m not in v,
    FilterOperator.CONTAINS: lambda v, m: v in m,
    FilterOperator.ANY: lambda v, m: any(x in m for x in v),
    FilterOperator.ALL: lambda v, m: all(x in m for x in v),
    FilterOperator.TEXT_MATCH: lambda v, m: _text_match(v, m, fold=False),
    FilterOperator.TEXT_MATCH_INSENSITIVE: lambda v, m: _text_match(v, m, fold=True),
}
_CONDITIONS = (FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT)


def _leaf(flt: Any) -> Predicate:
    key, value = flt.key, flt.value
    # ExactMatchFilter (legacy) has no operator and means equality.
    oper = getattr(flt, "operator", FilterOperator.EQ)
    if oper == FilterOperator.IS_EMPTY:
        return lambda meta: meta.get(key) in (None, "", [])
    if oper not in _OPS:
        msg = (
            f"Unsupported filter operator {oper!r} on key {key!r}; ColBERTRetriever supports "
            f"{sorted(str(o.value) for o in [*_OPS, FilterOperator.IS_EMPTY])}."
        )
        raise ValueError(msg)
    compare = _OPS[oper]

    def match(meta: Mapping[str, Any]) -> bool:
        found = meta.get(key)
        if found is None:  # a missing key only satisfies negative operators (as LlamaIndex)
            return oper in (FilterOperator.NE, FilterOperator.NIN)
        try:
            return bool(compare(value, found))
        except TypeError as exc:
            msg = (
                f"Filter {key!r} {oper.value} {value!r} cannot be applied to metadata value "
                f"{found!r} ({type(found).__name__}): {exc}. Make the filter value the same "
                "type as the metadata."
            )
            raise TypeError(msg) from exc

    return match


def to_predicate(
    filters: MetadataFilters | MetadataFilter | None, doc_ids: Sequence[str] | None = None
) -> Predicate | None:
    """Compile LlamaIndex metadata filters into a predicate on a metadata dict.

    Args:
        filters: A ``MetadataFilters`` tree (nested trees allowed), a single ``MetadataFilter``,
            or ``None``.
        doc_ids: If given, also require ``metadata["ref_doc_id"]`` (set by
            ``node_to_metadata_dict``) to be one of them.

    Returns:
        ``None`` when there is nothing to filter, else a callable ``metadata -> bool`` whose
        ``filter_mapping`` gives the same filters in the core's declarative language (what a
        backend that filters outside Python, such as ``QdrantIndex``, applies).

    Raises:
        ValueError: For an operator or condition this retriever cannot evaluate.
        TypeError: If ``filters`` is not a LlamaIndex filter object.
    """
    base = _compile(filters)
    if doc_ids is None:
        return None if base is None else LlamaIndexFilter(base, filters, None)
    wanted = set(doc_ids)
    return LlamaIndexFilter(
        lambda meta: meta.get("ref_doc_id") in wanted and (base is None or base(meta)),
        filters,
        doc_ids,
    )


def _compile(filters: Any) -> Predicate | None:
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        if hasattr(filters, "key") and hasattr(filters, "value"):
            return _leaf(filters)
        msg = f"filters must be a MetadataFilters or MetadataFilter, got {type(filters).__name__}."
        raise TypeError(msg)
    if not filters.filters:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition not in _CONDITIONS:
        msg = f"Unsupported filter condition {condition!r}; expected one of and/or/not."
        raise ValueError(msg)
    parts = [_compile(f) or (lambda _meta: True) for f in filters.filters]
    if condition == FilterCondition.AND:
        return lambda meta: all(p(meta) for p in parts)
    if condition == FilterCondition.OR:
        return lambda meta: any(p(meta) for p in parts)
    return lambda meta: not any(p(meta) for p in parts)  # NOT: none of the filters match


def as_nodes(nodes: Any, name: str) -> list[BaseNode]:
    """Return LlamaIndex nodes (one node counts as one).

    Raises:
        TypeError: For anything else (a LangChain Document, a str...), with the conversion.
    """
    text_fix = "Wrap a text as TextNode(text=text), or Document(text=text) to have it split."
    fixes = {"langchain_core": FROM_LANGCHAIN, "builtins": text_fix}
    return as_items(nodes, name, BaseNode, "a LlamaIndex node (TextNode, Document...)", fixes)


def node_records(nodes: Sequence[BaseNode]) -> tuple[list[str], list[str], list[dict]]:
    """The texts (embed content), ids and stored metadata of ``nodes``, checked by position.

    Raises:
        ValueError: If a node's content is not valid Unicode or its metadata cannot be
            serialised (naming the node), before anything is indexed.
    """
    texts, ids, metas = [], [], []
    for i, node in enumerate(nodes):
        try:
            text = node.get_content(metadata_mode=MetadataMode.EMBED)
            meta = node_to_metadata_dict(node)
        except RecursionError:  # LlamaIndex formats and serialises metadata recursively
            msg = f"nodes[{i}] (id {node.node_id!r}) has metadata nested too deeply; flatten it."
            raise ValueError(msg) from None
        except (TypeError, ValueError) as exc:  # PydanticSerializationError is a ValueError
            msg = (
                f"nodes[{i}] (id {node.node_id!r}) cannot be stored: its metadata is not "
                f"JSON-serialisable ({exc}). Use str, int, float, bool, None, lists and dicts."
            )
            raise ValueError(msg) from None
        check_unicode(text, f"nodes[{i}] (its text and embedded metadata)")
        texts.append(text)
        ids.append(node.node_id)
        metas.append(meta)
    return texts, ids, metas


def collect_nodes(
    nodes: Sequence[BaseNode] | None,
    documents: Sequence[BaseNode] | None,
    index: Any,
    docstore: Any,
    *,
    chunk_size: int | None,
    transformations: list[Any] | None = None,
) -> list[BaseNode]:
    """Return the nodes of exactly one source (as ``from_defaults`` takes them).

    Args:
        nodes: Nodes, used as they are.
        documents: Documents, split by ``transformations`` (default: a ``SentenceSplitter`` of
            ``chunk_size`` tokens, since text beyond the encoder's document length is cut off).
        index: A ``VectorStoreIndex``: the nodes of its docstore.
        docstore: A docstore: its nodes.
        chunk_size: Default chunk size for ``documents`` (None: ``SentenceSplitter``'s default).
        transformations: Node parsers for ``documents``.

    Returns:
        The nodes to index.

    Raises:
        ValueError: Unless exactly one source is given.
        TypeError: If ``index`` has no docstore (e.g. a ``LateInteractionIndex``).
    """
    if sum(x is not None for x in (nodes, documents, index, docstore)) != 1:
        msg = "Pass exactly one of nodes, documents, index (a VectorStoreIndex) or docstore."
        raise ValueError(msg)
    if index is not None:
        if not hasattr(index, "docstore"):
            msg = f"index must be a LlamaIndex VectorStoreIndex, got {type(index).__name__}; "
            msg += "wrap a LateInteractionIndex with ColBERTRetriever(index=...) instead."
            raise TypeError(msg)
        docstore = index.docstore
    if docstore is not None:
        return list(docstore.docs.values())
    if documents is not None:
        from llama_index.core.ingestion import run_transformations
        from llama_index.core.node_parser import SentenceSplitter

        if chunk_size is None:
            splitter = SentenceSplitter()
        else:
            splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_size // 8)
        documents = as_nodes(documents, "documents")
        return list(run_transformations(documents, transformations or [splitter]))
    return as_nodes(nodes, "nodes")


SCORE_MODES = ("normalized", "maxsim")
EXPLANATION_KEY = "explanation"
MAXSIM_KEY, DENSE_KEY = "maxsim_score", "dense_score"  # the parts of a fused score


def check_score_mode(score_mode: str) -> str:
    """Return ``score_mode`` if it is one of :data:`SCORE_MODES`.

    Raises:
        ValueError: Otherwise, naming the choices.
    """
    if score_mode not in SCORE_MODES:
        msg = f"score_mode must be one of {SCORE_MODES}; got {score_mode!r}."
        raise ValueError(msg)
    return score_mode


def scored_node(node: BaseNode, result: Any, score_mode: str) -> NodeWithScore:
    """A ``NodeWithScore`` from a core hit or rerank result, with its explanation if any.

    The score is the normalised one results are ranked by (in [-1, 1]: what
    ``SimilarityPostprocessor(similarity_cutoff=...)`` can threshold): the mean best cosine per
    query token, fused with the dense cosine when the encoder's ``dense_weight`` w > 0 (the
    embedded default), ``(MaxSim / query tokens + w * dense) / (1 + w)``; or, with ``"maxsim"``,
    the raw MaxSim sum. When fused, the parts go into a copy of the node's metadata as
    ``"maxsim_score"`` and ``"dense_score"``; an explanation goes there under ``"explanation"``.
    These keys are excluded from what the LLM and the embedder see; spans index
    ``node.get_content()``.
    """
    score = result.normalized_score if score_mode == "normalized" else result.score
    extra: dict[str, Any] = {}
    if result.dense_score is not None:
        extra = {MAXSIM_KEY: float(result.score), DENSE_KEY: float(result.dense_score)}
    if result.explanation is not None:
        extra[EXPLANATION_KEY] = _on_node_text(node, result.explanation.to_dict())
    if extra:
        hidden = [k for k in extra if k not in node.excluded_llm_metadata_keys]
        hidden_embed = [k for k in extra if k not in node.excluded_embed_metadata_keys]
        node = node.model_copy(
            update={
                "metadata": {**node.metadata, **extra},
                "excluded_llm_metadata_keys": [*node.excluded_llm_metadata_keys, *hidden],
                "excluded_embed_metadata_keys": [*node.excluded_embed_metadata_keys, *hidden_embed],
            }
        )
    return NodeWithScore(node=node, score=float(score))


def _on_node_text(node: BaseNode, explanation: dict[str, Any]) -> dict[str, Any]:
    """Re-base an explanation's spans from the encoded text onto ``node.get_content()``.

    The index encodes ``get_content(MetadataMode.EMBED)``: the node's embed metadata, then its
    text. A match inside the text gets a span into the text; a match in the metadata header
    gets ``document_span=None`` and ``document_kind="metadata"`` (it matched a metadata value).
    """
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    offset = node.get_content(metadata_mode=MetadataMode.EMBED).find(text) if text else -1
    matches = []
    for match in explanation["matches"]:
        span = match["document_span"]
        if span is not None:
            start, end = span[0] - offset, span[1] - offset
            inside = offset >= 0 and 0 <= start and end <= len(text)
            match = {
                **match,
                "document_span": [start, end] if inside else None,
                "document_kind": match["document_kind"] if inside else "metadata",
            }
        matches.append(match)
    return {**explanation, "matches": matches}
