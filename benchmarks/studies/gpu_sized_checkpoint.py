"""A ColBERT checkpoint of another backbone size, random weights, for GPU throughput only.

Copies a checkpoint (the shared 128-d MiniLM one: tokenizer, sentence-transformers config) and
replaces its BERT backbone and Dense layer with random ones of ``LAYERS`` x ``HIDDEN``: 12 x 768
is ColBERTv2's BERT-base size, 12 x 384 answerai-colbert-small's. On the device tool::

    python3 benchmarks/studies/gpu_sized_checkpoint.py \
        .cache/gpu13/whl/ckpt-fp16 /tmp/ckpt-base 12 768
    python3 -m benchmarks.studies.gpu --checkpoint /tmp/ckpt-base ... --tag bertbase
"""

import json
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

src, dst = sys.argv[1], sys.argv[2]
layers, hidden = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (12, 768)
shutil.copytree(src, dst, dirs_exist_ok=True)
cfg = json.load(open(f"{src}/config.json"))
cfg.update(
    hidden_size=hidden,
    num_hidden_layers=layers,
    num_attention_heads=12,
    intermediate_size=4 * hidden,
)
json.dump(cfg, open(f"{dst}/config.json", "w"))
torch.manual_seed(0)
model = BertModel(BertConfig(**cfg), add_pooling_layer=False)
save_file(
    {k: v.contiguous().half() for k, v in model.state_dict().items()}, f"{dst}/model.safetensors"
)
dense = json.load(open(f"{src}/1_Dense/config.json"))
dense["in_features"] = hidden
json.dump(dense, open(f"{dst}/1_Dense/config.json", "w"))
save_file(
    {"linear.weight": torch.randn(128, hidden) / hidden**0.5}, f"{dst}/1_Dense/model.safetensors"
)
print("built", dst, sum(p.numel() for p in model.parameters()) / 1e6, "M params")
