"""Write tiny, deterministic ColBERT checkpoints (PyLate and Stanford formats) into folders.

Nothing here is committed as weights: tests build the checkpoints into tmp dirs. The weights come
from a numpy generator keyed by parameter name, so the same call gives byte-identical checkpoints
in any venv with torch, transformers, tokenizers, safetensors and numpy (the golden script imports
this file by path from the PyLate baseline venv). Keep it free of other imports.
"""

from __future__ import annotations

import hashlib
import json
import string
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import BertConfig, BertModel

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]
WORDS = [
    "the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "with", "as", "by", "at",
    "from", "that", "it", "what", "who", "how", "paris", "france", "capital", "city", "river",
    "cat", "cats", "dog", "dogs", "sat", "mat", "run", "runs", "fast", "blue", "sky", "sea",
    "water", "cell", "cells", "protein", "gene", "study", "result", "model", "data", "search",
    "query", "document", "late", "interaction", "token", "vector", "colbert", "1", "2", "3",
]  # fmt: skip
SUBWORDS = ["##s", "##ing", "##ed", "##er", "##ly", "##ion"]
VOCAB = SPECIAL + list(string.punctuation) + WORDS + SUBWORDS
PYLATE_PREFIXES = ("[Q] ", "[D] ")
STANFORD_MARKERS = ("[unused0]", "[unused1]")


def _rng_for(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _param(seed: int, name: str, shape: Sequence[int], scale: float) -> torch.Tensor:
    values = _rng_for(seed, name).standard_normal(tuple(shape)).astype(np.float32) * scale
    return torch.from_numpy(values)


def _bert_config(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        type_vocab_size=2,
        pad_token_id=0,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def backbone_state_dict(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights for the tiny BERT backbone, keyed as ``BertModel`` names them."""
    shapes = {
        k: tuple(v.shape) for k, v in BertModel(_bert_config(vocab_size)).state_dict().items()
    }
    state = {}
    for name, shape in shapes.items():
        if "position_ids" in name or "token_type_ids" in name:
            continue  # buffers, rebuilt by transformers
        if name.endswith("LayerNorm.weight"):
            state[name] = 1.0 + _param(seed, name, shape, 0.1)
        elif "embeddings" in name:
            state[name] = _param(seed, name, shape, 0.5)
        else:
            state[name] = _param(seed, name, shape, 0.2)
    return state


def _write_tokenizer(folder: Path, added: Sequence[str]) -> int:
    tok = Tokenizer(WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = VOCAB.index("[CLS]"), VOCAB.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL[:5]])
    if added:  # as PyLate saves "[Q] "/"[D] " after tokenizer.add_tokens
        tok.add_tokens([AddedToken(t, normalized=True, special=False) for t in added])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": True,
        "model_max_length": 512,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    _dump(folder / "tokenizer_config.json", config)
    return tok.get_vocab_size(with_added_tokens=True)


def _dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _write_backbone(folder: Path, vocab_size: int, seed: int, prefix: str = "") -> dict:
    config = _bert_config(vocab_size).to_dict()
    _dump(folder / "config.json", config)
    state = {prefix + k: v for k, v in backbone_state_dict(vocab_size, seed).items()}
    return state


def dense_weights(
    in_features: int, out_features: int, *, seed: int, name: str, bias: bool, residual: bool
) -> dict[str, torch.Tensor]:
    """Seeded weights of one Dense layer: ``linear.weight`` ``[out, in]``, bias, residual."""
    scale = 1.0 / in_features**0.5
    state = {"linear.weight": _param(seed, name + ".w", (out_features, in_features), scale)}
    if bias:
        state["linear.bias"] = _param(seed, name + ".b", (out_features,), 0.1)
    if residual and in_features != out_features:
        state["residual.weight"] = _param(seed, name + ".r", (out_features, in_features), scale)
    return state


def build_pylate(
    folder: str | Path,
    *,
    seed: int = 0,
    dense: Sequence[dict] = ({"out_features": 16, "bias": False, "use_residual": False},),
    st_config: dict | None = None,
    added_tokens: Sequence[str] = PYLATE_PREFIXES,
    do_lower_case: bool = False,
) -> Path:
    """Write a PyLate/sentence-transformers ColBERT checkpoint.

    Args:
        folder: Target folder (created).
        seed: Weight seed.
        dense: One dict per Dense module (``out_features``, ``bias``, ``use_residual``), chained.
        st_config: Keys of ``config_sentence_transformers.json`` (ColBERT settings); None ->
            PyLate's own defaults are written explicitly.
        added_tokens: Tokens added to the tokenizer (and the embedding matrix).
        do_lower_case: ``sentence_bert_config.json`` value.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer(folder, added_tokens)
    save_file(_write_backbone(folder, vocab_size, seed), str(folder / "model.safetensors"))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
    ]
    in_features = 32
    for i, spec in enumerate(dense, start=1):
        sub = folder / f"{i}_Dense"
        sub.mkdir(exist_ok=True)
        out_features = spec["out_features"]
        weights = dense_weights(
            in_features,
            out_features,
            seed=seed,
            name=f"dense{i}",
            bias=spec["bias"],
            residual=spec["use_residual"],
        )
        save_file(weights, str(sub / "model.safetensors"))
        cfg = {
            "in_features": in_features,
            "out_features": out_features,
            "bias": spec["bias"],
            "activation_function": spec.get(
                "activation_function", "torch.nn.modules.linear.Identity"
            ),
            "use_residual": spec["use_residual"],
        }
        _dump(sub / "config.json", cfg)
        modules.append(
            {"idx": i, "name": str(i), "path": sub.name, "type": "pylate.models.Dense.Dense"}
        )
        in_features = out_features
    _dump(folder / "modules.json", modules)
    _dump(
        folder / "sentence_bert_config.json",
        {"max_seq_length": 512, "do_lower_case": do_lower_case},
    )
    defaults = {
        "query_prefix": "[Q] ",
        "document_prefix": "[D] ",
        "query_length": 32,
        "document_length": 180,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
        "do_query_expansion": True,
    }
    config = {"model_type": "ColBERT", "similarity_fn_name": "MaxSim", "prompts": {}}
    config["default_prompt_name"] = None
    config.update(defaults if st_config is None else st_config)
    _dump(folder / "config_sentence_transformers.json", config)
    return folder


def build_stanford(
    folder: str | Path,
    *,
    seed: int = 0,
    dim: int = 16,
    metadata: dict | None = None,
    write_metadata: bool = True,
) -> Path:
    """Write a Stanford colbert-ai (``HF_ColBERT``) checkpoint.

    The backbone sits under ``bert.`` and the projection is a top-level ``linear.weight``
    ``[dim, hidden]`` without bias. With the same ``seed`` the backbone and the projection equal
    those of ``build_pylate(..., added_tokens=(), dense=[{"out_features": dim, "bias": False,
    "use_residual": False}])``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer(folder, ())
    state = _write_backbone(folder, vocab_size, seed, prefix="bert.")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["HF_ColBERT"]
    _dump(folder / "config.json", config)
    linear = dense_weights(32, dim, seed=seed, name="dense1", bias=False, residual=False)
    state["linear.weight"] = linear["linear.weight"]
    save_file(state, str(folder / "model.safetensors"))
    if write_metadata:
        meta = {
            "query_token_id": "[unused0]",
            "doc_token_id": "[unused1]",
            "query_maxlen": 32,
            "doc_maxlen": 180,
            "dim": dim,
            "mask_punctuation": True,
            "attend_to_mask_tokens": False,
            "similarity": "cosine",
            "meta": {"version": "colbert-v0.4"},
        }
        meta.update(metadata or {})
        _dump(folder / "artifact.metadata", meta)
    return folder


def checkpoint_digest(folder: str | Path) -> str:
    """SHA-256 over every file of a checkpoint folder (names and bytes), to detect builder drift."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if (
            path.suffix == ".safetensors"
        ):  # the header embeds no version, the tensors are what count
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
