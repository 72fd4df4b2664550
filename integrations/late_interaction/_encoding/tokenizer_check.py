"""Refuse a checkpoint whose tokenizer cannot cover its model (e.g. its tokenizer files are gone).

Why: with no vocabulary file, transformers still builds a tokenizer from the model's config that
knows only its special tokens, so every word becomes ``[UNK]`` and encoding "works" silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from late_interaction.exceptions import CheckpointFormatError

# Files a Hugging Face tokenizer reads its vocabulary from (fast, WordPiece, BPE, sentencepiece).
VOCABULARY_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def check_tokenizer(folder: Path, tokenizer: Any, backbone: Any) -> None:
    """Raise if ``tokenizer`` knows fewer than half of the tokens ``backbone`` has embeddings for.

    Embedding matrices are often padded a little past the vocabulary, never to twice its size,
    so a tokenizer that small lacks its vocabulary (or belongs to another model).

    Args:
        folder: The checkpoint folder the two were loaded from (named in the error).
        tokenizer: The loaded Hugging Face tokenizer.
        backbone: The loaded transformer.

    Raises:
        CheckpointFormatError: Naming what was found and how to restore the tokenizer files.
    """
    n_vocab = len(tokenizer)
    n_rows = int(backbone.get_input_embeddings().num_embeddings)
    if 2 * n_vocab >= n_rows:
        return
    found = sorted(p.name for p in Path(folder).iterdir() if p.name in VOCABULARY_FILES)
    msg = (
        f"{folder}: the tokenizer knows {n_vocab} tokens but the model has {n_rows} token "
        f"embeddings, so nearly every word would become [UNK]. The tokenizer's vocabulary is "
        f"missing or from another model (vocabulary files found: {found or 'none'}; expected "
        "tokenizer.json, or vocab.txt / vocab.json + merges.txt / a sentencepiece *.model, with "
        "tokenizer_config.json). Copy the base model's tokenizer into the folder: "
        "AutoTokenizer.from_pretrained(base_model).save_pretrained(folder)."
    )
    raise CheckpointFormatError(msg)
