"""Which query token matched which document token: the rows of an encoding, named and located.

An encoded text's rows are the tokens the ColBERT rules keep (``tokenize.py``): the tokenizer's
tokens, plus a marker after the first special token, plus ``[MASK]`` expansions on queries, less
the skiplist and (optionally) special tokens. :func:`row_tokens` rebuilds that same list with each
row's token string, its kind and its character span in the original text, so a MaxSim match can
be shown as highlighted evidence.
"""

from __future__ import annotations

import numpy as np

from late_interaction._encoding import tokenize as _tokenize
from late_interaction._encoding.pipeline import Pipeline
from late_interaction.types import Explanation, TokenMatch

_NO_SPAN = (0, 0)


def row_tokens(
    pipeline: Pipeline, text: str, is_query: bool
) -> list[tuple[str, str, tuple[int, int] | None]]:
    """``(token, kind, span)`` for each row that encoding ``text`` returns, in row order.

    ``kind`` is ``"text"`` (a piece of the text; ``span`` is its ``[start, end)`` in ``text``),
    ``"special"`` (``[CLS]``/``[SEP]``-like), ``"marker"`` (``[Q]``/``[D]``) or ``"expansion"``
    (a query's ``[MASK]`` padding); only text tokens have a span.

    Raises:
        TypeError: If the tokenizer is not a fast (Rust) tokenizer: only those report offsets.
    """
    tokenizer, rules, config = pipeline.tokenizer, pipeline.rules, pipeline.config
    if not getattr(tokenizer, "is_fast", False):
        msg = "explanations need character offsets, which only fast (Rust) tokenizers report."
        raise TypeError(msg)
    features, keep = _tokenize.tokenize(tokenizer, rules, config, [text], is_query=is_query)
    ids, keep = features["input_ids"][0].tolist(), keep[0].tolist()
    # The same text the rules tokenise: stripped unless Stanford (offsets shift by the leading
    # whitespace), and lower-cased where the checkpoint says so (offsets then index the
    # lower-cased text, which has the original's length for all but a few non-ASCII letters).
    shift = len(text) - len(text.lstrip()) if rules.strip else 0
    cleaned = text.strip() if rules.strip else text
    cleaned = cleaned.lower() if rules.do_lower_case else cleaned
    prefix_id = rules.query_prefix_id if is_query else rules.document_prefix_id
    length = config.query_length if is_query else config.document_length
    encoded = tokenizer(
        cleaned,
        truncation=True,
        max_length=length - 1 if prefix_id is not None else length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    rows: list[tuple[str, str, tuple[int, int] | None]] = []
    offsets = encoded["offset_mapping"]
    for token_id, (start, end), special in zip(
        encoded["input_ids"], offsets, encoded["special_tokens_mask"], strict=True
    ):
        kind = "special" if special else "text"
        span = None if special or (start, end) == _NO_SPAN else (start + shift, end + shift)
        rows.append((tokenizer.convert_ids_to_tokens(token_id), kind, span))
    if prefix_id is not None:
        marker = config.query_prefix if is_query else config.document_prefix
        rows.insert(1, (marker, "marker", None))
    expansion = tokenizer.convert_ids_to_tokens(rules.expansion_id)
    rows += [(expansion, "expansion", None)] * (len(ids) - len(rows))
    return [row for row, kept in zip(rows, keep, strict=True) if kept]


def explain_pair(
    pipeline: Pipeline, query: str, document: str, query_matrix: np.ndarray, doc_matrix: np.ndarray
) -> Explanation:
    """The MaxSim of ``query`` against ``document``, broken down by query token.

    Args:
        pipeline: The encoder's pipeline (for the token rows).
        query: Query text.
        document: Document text.
        query_matrix: ``query`` encoded as a query. Shape: ``(n_query_rows, dim)``.
        doc_matrix: ``document`` encoded as a document. Shape: ``(n_doc_rows, dim)``.

    Returns:
        One :class:`TokenMatch` per query row (expansion rows included: they score too).
    """
    q_rows = row_tokens(pipeline, query, is_query=True)
    d_rows = row_tokens(pipeline, document, is_query=False)
    if len(q_rows) != query_matrix.shape[0] or len(d_rows) != doc_matrix.shape[0]:
        msg = "token rows and encoded rows disagree; the encoder's rules changed mid-explanation."
        raise RuntimeError(msg)
    sims = np.asarray(query_matrix, np.float32) @ np.asarray(doc_matrix, np.float32).T
    best = sims.argmax(axis=1)
    matches = [
        TokenMatch(
            query_token=q_rows[i][0],
            query_kind=q_rows[i][1],
            document_token=d_rows[j][0],
            document_kind=d_rows[j][1],
            document_span=d_rows[j][2],
            similarity=float(sims[i, j]),
        )
        for i, j in enumerate(best.tolist())
    ]
    score = float(sims.max(axis=1).sum())
    return Explanation(score=score, normalized_score=score / len(matches), matches=matches)
