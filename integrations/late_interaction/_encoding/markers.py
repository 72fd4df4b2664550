"""Marker tokens (``[Q] ``, ``[D] ``) missing from a vocabulary: refused, or added on request."""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)


def ensure_markers(backbone: Any, tokenizer: Any, markers: list[str], *, add_missing: bool) -> None:
    """Check that marker tokens are in the vocabulary; add missing ones only when asked to.

    A marker the vocabulary lacks would get an untrained embedding, so a mistyped marker (or a
    base encoder given markers) is an error unless ``add_missing`` says it is intended, as when
    preparing a base encoder for ColBERT training. Added rows are set to the mean of the existing
    vocabulary rows (deterministic, close to transformers' mean resizing that PyLate relies on).

    Args:
        backbone: The transformer whose input embeddings get the new rows.
        tokenizer: Its tokenizer (extended in place).
        markers: Marker tokens in use (e.g. ``["[Q] ", "[D] "]``).
        add_missing: Add missing markers instead of raising.

    Raises:
        ValueError: If a marker is missing and ``add_missing`` is false.
    """
    unk = tokenizer.unk_token_id
    missing = []
    for token in dict.fromkeys(markers):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or (token_id == unk and token != tokenizer.unk_token):
            missing.append(token)
    if not missing:
        return
    if not add_missing:
        msg = (
            f"marker token(s) {missing} are not in this checkpoint's vocabulary, so they would "
            "get untrained embeddings. Check the spelling of query_prefix/document_prefix (a "
            "trained ColBERT checkpoint ships its markers), pass '' for no marker, or pass "
            "add_missing_markers=True to add them on purpose (e.g. before training)."
        )
        raise ValueError(msg)
    old = len(tokenizer)
    tokenizer.add_tokens(missing)
    embeddings = backbone.get_input_embeddings()
    if embeddings.num_embeddings < len(tokenizer):
        backbone.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        embeddings = backbone.get_input_embeddings()
    with torch.no_grad():
        mean = embeddings.weight[:old].mean(dim=0)
        for token in missing:
            embeddings.weight[tokenizer.convert_tokens_to_ids(token)] = mean
    logger.info("Marker tokens %s added with untrained embeddings (the vocabulary mean).", missing)
