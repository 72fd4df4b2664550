"""A text's dense vector, taken from the forward pass that makes its token vectors.

The backbone's last hidden states averaged over the tokens it attended to (padding excluded;
special tokens, markers and punctuation included, before the skiplist, the projection and the
per-token normalisation), then L2-normalised. For a sentence-transformers model with mean pooling
(the embedded all-MiniLM-L6-v2) this is exactly its sentence embedding,
``SentenceTransformer(path).encode(text, normalize_embeddings=True)``, at the same truncation.
"""

from __future__ import annotations

import torch


def mean_pooled(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Unit-length masked mean of the backbone output, one row per text (float32).

    Args:
        last_hidden_state: The backbone's output. Shape: ``(batch, seq_len, hidden)``.
        attention_mask: 1 where the backbone attended, 0 at padding. Shape: ``(batch, seq_len)``.

    Returns:
        float32 tensor of shape ``(batch, hidden)``, rows L2-normalised.
    """
    hidden = last_hidden_state.float()
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=-1)
