"""Where onnxruntime spends an encode, by operator type, float32 vs int8 (issue 11, Speed / CPU).

Loads the checkpoint with ``backend="onnx"`` (and ``quantize="int8"``), opens the exported file
in a profiling onnxruntime session (same thread and spinning settings as the encoder) and runs
tokenised SciFact documents through it in batches of 32, longest last as the encoder sorts them.

Usage (from the repository root):
    PYTHONPATH=integrations python -m benchmarks.studies.backends_profile --docs 96
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import torch

from benchmarks import _harness as h
from benchmarks._beir import load_beir


def profile(path: Path, batches: list[dict]) -> collections.Counter:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    session.run(None, {n: batches[0][n] for n in names})  # warm-up, also profiled: small
    for batch in batches:
        session.run(None, {n: batch[n] for n in names})
    trace = Path(session.end_profiling())
    spent: collections.Counter = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            spent[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    return spent


def main() -> None:
    from late_interaction import ColBERT
    from late_interaction._encoding import tokenize as _tokenize

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=h.SHARED_DATA / "scifact")
    p.add_argument("--checkpoint", type=Path, default=h.CHECKPOINT_DIR)
    p.add_argument("--docs", type=int, default=96)
    args = p.parse_args()
    texts = sorted(load_beir(args.data, max_docs=args.docs).doc_texts[: args.docs], key=len)
    for quantize in (None, "int8"):
        model = ColBERT.from_pretrained(args.checkpoint, backend="onnx", quantize=quantize)
        pipe = model._pipeline  # the benchmark reads the encoder's own tokenisation and file
        batches = [
            {
                k: v.numpy()
                for k, v in _tokenize.tokenize(
                    pipe.tokenizer, pipe.rules, pipe.config, texts[i : i + 32], is_query=False
                )[0].items()
            }
            for i in range(0, len(texts), 32)
        ]
        spent = profile(pipe._runner.path, batches)
        total = sum(spent.values())
        print(f"quantize={quantize}: {total / 1e3:.0f} ms in operators")
        for op, us in spent.most_common(8):
            print(f"  {op:<24} {100 * us / total:5.1f}%")


if __name__ == "__main__":
    main()
