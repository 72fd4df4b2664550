"""The ColBERT encoder: checkpoint in, one L2-normalised token matrix per text out.

.. code-block:: python

    model = ColBERT.from_pretrained()  # embedded all-MiniLM-L6-v2, offline; or a PyLate
    model = ColBERT.from_pretrained("colbert-ir/colbertv2.0")  # or Stanford colbert-ai checkpoint
    queries = model.encode_queries(["what is late interaction?"])  # [array (n_tokens, dim)]
    ranked = model.rerank("what is late interaction?", ["doc one", "doc two"], top_k=1)

Loading, the tokenisation rules and the forward pass live in the private ``_encoding`` package;
the checkpoint formats are read by sentence-transformers' ``MultiVectorEncoder`` (>= 6.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from late_interaction._encoding.load import DEFAULT_MODEL, default_model_path, load_pipeline
from late_interaction._encoding.pipeline import Pipeline
from late_interaction._encoding.pool_methods import PoolMethods
from late_interaction._encoding.save import save_pylate
from late_interaction._encoding.scoring_methods import ScoringMethods
from late_interaction._validation import as_texts
from late_interaction.config import EncoderConfig

__all__ = ["DEFAULT_MODEL", "ColBERT"]

#: Version of the :meth:`ColBERT.fingerprint` layout and of the encoding rules it stands for.
FINGERPRINT_VERSION = 1


class ColBERT(PoolMethods, ScoringMethods):
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
        config: The :class:`~late_interaction.EncoderConfig` in effect.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self.config = pipeline.config
        self._pool = None  # start_pool's EncodePool, while open (pool_methods.py)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        backend: str = "torch",
        quantize: str | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        do_query_expansion: bool | None = None,
        attend_to_expansion_tokens: bool | None = None,
        skiplist_words: Sequence[str] | None = None,
        keep_special_tokens: bool | None = None,
        skiplist_rule: str | None = None,
        dense_weight: float | None = None,
        add_missing_markers: bool = False,
        revision: str | None = None,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
    ) -> ColBERT:
        """Load a PyLate, Stanford, sentence-transformers 6 native or plain encoder checkpoint.

        Each setting comes from the argument if given, else from the checkpoint (its
        sentence-transformers config or ``artifact.metadata``), else from the format's default;
        the winning source, and the libraries' own load messages, are logged at DEBUG.

        Args:
            name_or_path: Local folder or Hugging Face Hub id. ``None`` (or ``DEFAULT_MODEL``)
                loads the embedded all-MiniLM-L6-v2, offline: its token embeddings, no markers,
                no expansion (it is not a trained ColBERT).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; None picks cuda > mps > cpu.
            dtype: None (float32, exact), ``"auto"`` (float16/bfloat16 on GPU; bfloat16 autocast
                on a CPU with native bfloat16, else float32), or a float dtype.
            backend: ``"torch"``, or on CPU ``"onnx"`` (onnxruntime; extra ``[onnx]``) or
                ``"openvino"`` (extra ``[openvino]``): the backbone, exported offline from the
                loaded weights and cached in ``<local model folder>/onnx/`` or else
                ``$LATE_INTERACTION_CACHE`` (``~/.cache/late-interaction``). ``"openvino"`` also
                runs ``dtype="bfloat16"``/``"auto"``; ``"onnx"`` runs float32.
            quantize: ``"int8"`` (``backend="openvino"`` or ``"onnx"``): int8 weights, with
                activations quantised at run time; faster, approximate. OpenVINO's int8 is the
                faster and closer one (one scale per token and 128 channels, token cosine >= 0.99
                to float32 on the benchmark checkpoint; onnxruntime uses one scale per batch).
            query_prefix: Query marker token ("" for none), e.g. ``"[Q] "``, ``"[unused0]"``.
            document_prefix: Document marker token ("" for none).
            query_length: Query length in tokens, marker included (expansion target).
            document_length: Maximum document length in tokens, marker included.
            do_query_expansion: Pad queries to ``query_length`` with ``[MASK]`` and keep them.
            attend_to_expansion_tokens: Let the encoder attend to the ``[MASK]`` expansions.
            skiplist_words: Tokens dropped from documents (punctuation by default).
            keep_special_tokens: Keep ``[CLS]``/``[SEP]`` rows in query and document matrices.
            skiplist_rule: ``"vocab"`` (PyLate) or ``"encode"`` (colbert-ai), see EncoderConfig.
            dense_weight: Weight of the dense cosine in the fused score that search and rerank
                rank by (see EncoderConfig); 0.25 for plain encoders (the embedded default),
                0 (MaxSim alone) for PyLate and Stanford checkpoints.
            add_missing_markers: Add marker tokens the vocabulary lacks, with untrained embeddings
                (e.g. to prepare a base encoder for training). Off by default: a missing marker
                is usually a typo, and raises.
            revision: Hub revision (branch, tag or commit) for hub ids.
            trust_remote_code: Passed to transformers for models with custom code.
            model_kwargs: Extra keyword arguments for ``AutoModel.from_pretrained``.
            tokenizer_kwargs: Extra keyword arguments for ``AutoTokenizer.from_pretrained``.

        Returns:
            The encoder, in eval mode on the chosen device.

        Raises:
            CheckpointNotFoundError: If no such folder, hub repository or revision exists.
            ConnectionError: If a hub id is neither cached nor downloadable (offline); the
                message says how to pre-download it (``hf download``, ``HF_HUB_OFFLINE=1``).
            CheckpointFormatError: If the checkpoint is not a known format, or is damaged.
            ValueError: On an invalid setting, device or dtype, a backend with a device other
                than CPU, or a marker token missing from the vocabulary (see
                ``add_missing_markers``).
            ImportError: If the backend's runtime is not installed (names the extra).
            TypeError: On a setting of the wrong type.
        """
        given = locals()  # the encoder settings by name: one argument per EncoderConfig.SETTINGS
        arguments = {name: given[name] for name in EncoderConfig.SETTINGS}
        pipeline = load_pipeline(
            name_or_path,
            arguments,
            device=device,
            dtype=dtype,
            add_missing_markers=add_missing_markers,
            revision=revision,
            trust_remote_code=trust_remote_code,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            backend=backend,
            quantize=quantize,
        )
        return cls(pipeline)

    @classmethod
    def from_config(
        cls,
        config: EncoderConfig,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        backend: str = "torch",
        quantize: str | None = None,
    ) -> ColBERT:
        """Rebuild the encoder an :class:`EncoderConfig` (or a fingerprint) describes.

        ``device``, ``dtype``, ``backend`` and ``quantize`` are as in :meth:`from_pretrained`.

        Raises:
            CheckpointFormatError: If ``config.name_or_path`` cannot be loaded.
            ValueError: If the loaded checkpoint's dimension differs from ``config.dim``.
        """
        settings = {k: getattr(config, k) for k in EncoderConfig.SETTINGS}
        model = cls.from_pretrained(
            config.name_or_path,
            device=device,
            dtype=dtype,
            backend=backend,
            quantize=quantize,
            **settings,
        )
        if model.dim != config.dim:
            msg = f"{config.name_or_path} now gives dim {model.dim}; the config says {config.dim}."
            raise ValueError(msg)
        return model

    @property
    def dim(self) -> int:
        """Dimension of each token vector."""
        return self.config.dim

    @property
    def setting_sources(self) -> dict[str, str]:
        """Where each setting came from: ``"argument"``, a checkpoint file or a format default."""
        return dict(self._pipeline.setting_sources)

    @property
    def device(self) -> torch.device:
        """Device the model runs on."""
        return self._pipeline.device

    @property
    def dtype(self) -> torch.dtype:
        """Compute precision (on CPU, bfloat16 runs as autocast over float32 weights)."""
        return self._pipeline.dtype

    @property
    def backend(self) -> str:
        """Where the backbone runs: ``"torch"``, ``"onnx"`` or ``"openvino"``."""
        return self._pipeline.backend

    @property
    def quantize(self) -> str | None:
        """``"int8"`` for int8 weights (``backend="openvino"`` or ``"onnx"``), else None."""
        return self._pipeline.quantize

    @property
    def name_or_path(self) -> str:
        """Hub id or resolved local folder the weights came from."""
        return self.config.name_or_path

    def __repr__(self) -> str:
        backend = "" if self.backend == "torch" else f", backend={self.backend!r}"
        backend += f", quantize={self.quantize!r}" if self.quantize else ""
        return (
            f"ColBERT({self.name_or_path!r}, format={self.config.checkpoint_format!r}, "
            f"dim={self.dim}, device={str(self.device)!r}{backend})"
        )

    def encode_queries(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        return_dense: bool = False,
        devices: Sequence[str | torch.device] | None = None,
    ) -> Any:
        """Encode queries (query marker, ``[MASK]`` expansion if configured, no skiplist).

        Args:
            texts: One query or a sequence of queries (a bare str is one query).
            batch_size: Texts per forward pass.
            show_progress_bar: None shows a bar from 256 texts on.
            return_dense: Also return each query's dense vector (as :meth:`encode_documents`).
            devices: Encode on these devices at once, for this call (as :meth:`start_pool`,
                which keeps the devices' encoders for later calls).

        Returns:
            One float32 array of shape ``(n_tokens, dim)`` per query, rows L2-normalised, in input
            order. With expansion every query has ``query_length`` rows. With ``return_dense``,
            the pair ``(matrices, dense)``.

        Raises:
            TypeError: If an item is not a str (the message names its position).
            ValueError: If ``batch_size`` < 1.
        """
        out = self._encode(as_texts(texts, "texts"), True, batch_size, show_progress_bar, devices)
        return out if return_dense else out[0]

    def encode_documents(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        return_dense: bool = False,
        devices: Sequence[str | torch.device] | None = None,
    ) -> Any:
        """Encode documents (document marker, truncation, skiplist tokens dropped).

        Args:
            texts: One document or a sequence of documents (a bare str is one document).
            batch_size: Texts per forward pass.
            show_progress_bar: None shows a bar from 256 texts on.
            return_dense: Also return each text's dense vector, from the same forward pass: the
                backbone's last hidden states averaged over the non-padding tokens (before the
                skiplist and projection), L2-normalised. For the embedded all-MiniLM-L6-v2 it
                equals ``SentenceTransformer(path).encode(texts, normalize_embeddings=True)``.
            devices: Encode on these devices at once, e.g. ``["cuda:0", "cuda:1"]``, for this
                call; :meth:`start_pool` keeps the devices' encoders for later calls.

        Returns:
            One float32 array of shape ``(n_tokens, dim)`` per document, rows L2-normalised, in
            input order. With ``return_dense``, the pair ``(matrices, dense)``, ``dense`` a
            float32 array of shape ``(n_texts, hidden_size)`` with unit rows.

        Raises:
            TypeError: If an item is not a str (the message names its position).
            ValueError: If ``batch_size`` < 1.
        """
        out = self._encode(as_texts(texts, "texts"), False, batch_size, show_progress_bar, devices)
        return out if return_dense else out[0]

    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable identity of the encoder: equal dicts mean equal embeddings.

        The embedded default model is named ``DEFAULT_MODEL`` rather than by its install path,
        so the fingerprint is the same on every machine. Device, dtype, backend, quantisation
        (ways to compute the same vectors, to within their precision) and ``dense_weight`` (a
        scoring rule that a saved index records itself) are not part of it.
        """
        data = self.config.to_dict()
        del data["dense_weight"]
        if Path(data["name_or_path"]) == default_model_path():
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
        return save_pylate(Path(path), self._pipeline.checkpoint, self.config)
