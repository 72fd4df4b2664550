"""Search on a device: which device an index searches on, and exact top-k there.

``search.py`` asks :func:`mirror_of` for the device copy of a snapshot's store (None: search on
the CPU). Candidate scoring then runs ``DeviceMirror.score_slots`` instead of numpy, and an exact
search runs :func:`exact_top_k`: every allowed document scored on the device for a batch of
queries at once, the top ``k`` selected there, and only ``k`` ids and scores copied back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from late_interaction._index.device_store import DeviceMirror, fits, mirror_for
from late_interaction._index.snapshot import Snapshot, View

logger = logging.getLogger(__name__)

# Queries scored together by an exact device search: bounds the (queries x documents) score
# block (32 x 1M float32 = 128 MB) while filling the device.
_QUERY_BATCH = 32


@dataclass(frozen=True)
class SearchDevice:
    """Where an index scores: a torch device, and whether the user named it.

    Attributes:
        device: The device.
        explicit: True when given as ``device=`` (then a mirror that cannot fit is an error);
            False when it follows the encoder's device (then the CPU path is used instead, with
            a warning).
    """

    device: torch.device
    explicit: bool


def resolve_device(device: Any) -> torch.device | None:
    """Parse a ``device=`` argument (None stays None).

    Raises:
        ValueError: If it is not a device torch knows, or CUDA is named but not available.
    """
    if device is None:
        return None
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        msg = f'device must be "cpu", "cuda", "cuda:N" or a torch.device; got {device!r}.'
        raise ValueError(msg) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            msg = (
                f"device={device!r} needs a CUDA GPU, and torch sees none; use device='cpu' "
                "(the default when the encoder is on the CPU)."
            )
            raise ValueError(msg)
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def mirror_of(snap: Snapshot, where: SearchDevice | None) -> DeviceMirror | None:
    """The synced device mirror of ``snap``'s store, or None to search on the CPU.

    Raises:
        MemoryError: If an explicitly requested device cannot hold the mirror.
    """
    if where is None or snap.source is None:
        return None
    mirror = mirror_for(snap.source, where.device)
    if mirror.n_slots == 0 and not fits(snap, where.device):
        msg = (
            f"the index ({snap.tokens.shape[0]:,} token rows) does not fit in the free memory of "
            f"{where.device}; search on the CPU (device='cpu'), compress it "
            "(IndexConfig(nbits=2)) or free GPU memory."
        )
        if where.explicit:
            raise MemoryError(msg)
        logger.warning("%s Searching on the CPU instead.", msg)
        return None
    mirror.sync(snap)
    return mirror


def pad_queries(queries: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Stack query matrices into ``(n, max_rows, dim)`` with zero rows (which score 0)."""
    longest = max(q.shape[0] for q in queries)
    out = np.zeros((len(queries), longest, queries[0].shape[1]), dtype=np.float32)
    for i, q in enumerate(queries):
        out[i, : q.shape[0]] = q
    return torch.from_numpy(out).to(device)


def exact_top_k(
    mirror: DeviceMirror,
    view: View,
    queries: list[np.ndarray],
    k: int,
    fusion: list[tuple[float, np.ndarray | None]] | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]:
    """Exact scores of every allowed document, top ``k`` per query, computed on the device.

    Args:
        mirror: The synced device copy of the snapshot's store.
        view: Snapshot and restriction.
        queries: float32 query matrices.
        k: Results per query.
        fusion: Per query ``(dense_weight, dense vector)``; a weight above 0 ranks by the fused
            score (``late_interaction.fusion``) with the documents' dense vectors on the device.

    Returns:
        Per query ``(slots, maxsim, ranking score, dense cosine or None)`` of its best
        ``min(k, n_allowed)`` documents, best first; equal scores in storage order.
    """
    mask = view.mask()
    allowed = mirror.device_mask(mask)
    n_slots, everything = mask.shape[0], view.allowed is None and view.snap.n_live == mask.shape[0]
    k = min(k, view.snap.n_live if view.allowed is None else int(mask.sum()))
    fusion = fusion if fusion is not None else [(0.0, None)] * len(queries)
    out = []
    for start in range(0, len(queries), _QUERY_BATCH):
        batch = queries[start : start + _QUERY_BATCH]
        weights = [w for w, _ in fusion[start : start + _QUERY_BATCH]]
        scores = mirror.score_all(pad_queries(batch, mirror.device))[:, :n_slots]
        ranking, cosines = scores, None
        if any(w > 0 for w in weights):  # the fused score, as fusion.fused_scores computes it
            dense = np.stack([v for _, v in fusion[start : start + _QUERY_BATCH]])
            cosines = mirror.dense_cosines(dense)[:, :n_slots]
            rows = torch.tensor([q.shape[0] for q in batch], device=mirror.device)[:, None]
            w = torch.tensor(weights, device=mirror.device)[:, None]
            ranking = (scores / rows + w * cosines) / (1 + w)
        if not everything:
            ranking = ranking.masked_fill(~allowed, float("-inf"))
        top_rank, top_slots = torch.topk(ranking, k, dim=1)
        top_scores = torch.gather(scores, 1, top_slots)
        top_cos = None if cosines is None else torch.gather(cosines, 1, top_slots).cpu().numpy()
        top_rank, top_slots = top_rank.cpu().numpy(), top_slots.cpu().numpy()
        top_scores = top_scores.cpu().numpy()
        for j, (r, i) in enumerate(zip(top_rank, top_slots, strict=True)):
            if cosines is None:  # MaxSim alone: the ranking score is MaxSim per query row
                r = top_scores[j] / batch[j].shape[0]
            order = np.lexsort((i, -r))
            cos = None if top_cos is None else top_cos[j][order]
            out.append((i[order], top_scores[j][order], r[order], cos))
    return out
