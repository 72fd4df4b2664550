"""Write a tiny Stanford colbert-ai checkpoint on a CamemBERT (SentencePiece/Unigram) vocabulary.

Like ``antoinelouis/colbertv2-camembert-L4-mmarcoFR`` in miniature: a ``CamembertModel`` backbone
under ``roberta.`` plus a top-level ``linear.weight`` (dim 32), ``architectures: ["HF_ColBERT"]``,
and colbert-ai's default markers ``[unused0]``/``[unused1]``, which this vocabulary lacks. The
Unigram vocabulary is written out (no training), so the tokenizer is the same in any venv; the
weights come from tests/_builders.py's seeded generator. Imported by path by the golden script
(colbert-ai's venv) and by the tests (ours): keep it to torch, transformers, tokenizers,
safetensors and numpy.
"""

from __future__ import annotations

import importlib.util
import json
import string
import sys
from pathlib import Path

from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import CamembertConfig, CamembertModel

HERE = Path(__file__).resolve().parent
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]
WORDS = [
    "le", "la", "les", "de", "des", "du", "et", "est", "un", "une", "chat", "chats", "chien",
    "paris", "capitale", "france", "ville", "eau", "mer", "ciel", "bleu", "sur", "tapis",
    "recherche", "document", "requête", "modèle", "vite", "quelle", "qui", "cellule",
]  # fmt: skip
LETTERS = list("abcdefghijklmnopqrstuvwxyzéèàçêôûABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
# Some punctuation exists as a "▁x" piece, the rest only bare: encode("!") then starts with "▁",
# which is where colbert-ai's skiplist rule (first id of encode(symbol)) and PyLate's
# (convert_tokens_to_ids(symbol)) part ways on a SentencePiece vocabulary.
SPACED_PUNCT = ["▁(", "▁-", "▁«"]
DIM = 32
HIDDEN = 32
METADATA = {
    "query_token_id": "[unused0]",
    "doc_token_id": "[unused1]",
    "query_token": "[Q]",
    "doc_token": "[D]",
    "query_maxlen": 16,
    "doc_maxlen": 24,
    "dim": DIM,
    "mask_punctuation": True,
    "attend_to_mask_tokens": False,
    "similarity": "cosine",
    "meta": {"version": "colbert-v0.4"},
}


def _builders():
    if "_builders" in sys.modules:
        return sys.modules["_builders"]
    spec = importlib.util.spec_from_file_location("_builders", HERE.parent / "_builders.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_builders"] = module
    spec.loader.exec_module(module)
    return module


def _pieces() -> list[tuple[str, float]]:
    pieces = [(t, 0.0) for t in SPECIAL]
    pieces.append(("▁", -2.0))
    pieces += [("▁" + w, -3.0 - 0.01 * i) for i, w in enumerate(WORDS)]
    pieces += [(w, -6.0 - 0.01 * i) for i, w in enumerate(WORDS)]  # inside words, e.g. "lechat"
    pieces += [(p, -5.0) for p in SPACED_PUNCT]
    pieces += [(c, -8.0) for c in string.punctuation + "«»’"]
    pieces += [(c, -9.0) for c in LETTERS]
    pieces += [("▁" + c, -9.5) for c in LETTERS]
    pieces.append(("<mask>", 0.0))
    return pieces


def _write_tokenizer(folder: Path) -> int:
    tok = Tokenizer(Unigram(_pieces(), unk_id=SPECIAL.index("<unk>"), byte_fallback=False))
    # As transformers 5's CamembertTokenizer rebuilds it (4.x reads it from this file): runs of
    # whitespace split first, so both give the same tokens.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tok.add_special_tokens([AddedToken(t, special=True) for t in [*SPECIAL, "<mask>"]])
    tok.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "CamembertTokenizer",
        "model_max_length": 512,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return tok.get_vocab_size(with_added_tokens=True)


def build_camembert_stanford(folder: str | Path, *, seed: int = 11) -> Path:
    """Write the checkpoint into ``folder`` (created) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer(folder)
    config = CamembertConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    data = config.to_dict()
    data["architectures"] = ["HF_ColBERT"]
    (folder / "config.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    builders = _builders()
    shapes = {k: tuple(v.shape) for k, v in CamembertModel(config).state_dict().items()}
    state = {}
    for name, shape in sorted(shapes.items()):
        if "position_ids" in name or "token_type_ids" in name:
            continue  # buffers, rebuilt by transformers
        scale = 0.5 if "embeddings" in name else 0.2
        value = builders._param(
            seed, name, shape, 0.1 if name.endswith("LayerNorm.weight") else scale
        )
        state["roberta." + name] = value + 1.0 if name.endswith("LayerNorm.weight") else value
    state["linear.weight"] = builders._param(seed, "linear", (DIM, HIDDEN), HIDDEN**-0.5)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "artifact.metadata").write_text(json.dumps(METADATA, indent=2), encoding="utf-8")
    return folder


if __name__ == "__main__":
    sys.stdout.write(f"{build_camembert_stanford(sys.argv[1])}\n")
