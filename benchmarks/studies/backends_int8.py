"""Study: the backbone alone in each CPU runtime and int8 setting (issue 11, Speed / CPU).

Times only the backbone (no tokenising, projection or normalising) on tokenised SciFact batches,
in interleaved rounds, and reports per variant the median wall time and CPU time per document
(CPU time is steadier than wall time on a shared machine) and every token's cosine to float32
torch. The variants are the files the encoder exports (``backend="onnx"``/``"openvino"``,
``quantize="int8"``) under runtime settings the encoder does not expose: OpenVINO's activation
group size for int8 (``DYNAMIC_QUANTIZATION_GROUP_SIZE``; the encoder's choice is
``int8_weights.GROUP_SIZE``), its bfloat16 precision hint and static input shapes.

Usage (from the repository root):
    PYTHONPATH=integrations python -m benchmarks.studies.backends_int8 --docs 128
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import _harness as h
from benchmarks._beir import load_beir


def _openvino(path: Path, shape: tuple[int, int] | None = None, **config):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if shape is not None:  # static shapes: one compiled model per batch shape
        model.reshape({port.get_any_name(): ov.PartialShape(list(shape)) for port in model.inputs})
    settings = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32", **config}  # fmt: skip
    compiled = core.compile_model(model, "CPU", settings)
    names = [port.get_any_name() for port in compiled.inputs]
    request = compiled.create_infer_request()
    return lambda batch: np.array(request.infer({n: batch[n] for n in names})[0], copy=True)


def main() -> None:
    from late_interaction import ColBERT
    from late_interaction._encoding.batches import make_batches, plan_groups

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=h.SHARED_DATA / "scifact")
    p.add_argument("--checkpoint", type=Path, default=h.CHECKPOINT_DIR)
    p.add_argument("--docs", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--groups", default="32,64,128,192,384", help="int8 activation group sizes")
    h.result_options(p)
    args = p.parse_args()
    started = dt.datetime.now()
    texts = load_beir(args.data, max_docs=args.docs).doc_texts[: args.docs]
    reference = ColBERT.from_pretrained(args.checkpoint, device="cpu")
    pipe = reference._pipeline  # the encoder's own tokenisation and batch plan
    batches = [
        {k: v.numpy() for k, v in b.features.items()}
        for b in make_batches(pipe.tokenizer, pipe.rules, pipe.config, texts,
                              plan_groups(texts, 32), is_query=False, batch_size=32, pin=False)
    ]  # fmt: skip
    backbone = pipe.checkpoint.backbone

    def torch_fp32(batch):
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
            return backbone(**inputs).last_hidden_state.numpy()

    paths = {
        f"{backend}{'-' + quantize if quantize else ''}": ColBERT.from_pretrained(
            args.checkpoint, backend=backend, quantize=quantize
        )._pipeline._runner
        for backend, quantize in [
            ("onnx", None),
            ("onnx", "int8"),
            ("openvino", None),
            ("openvino", "int8"),
        ]
    }
    ort_fp32, ort_int8 = paths["onnx"], paths["onnx-int8"]
    base, ov_int8 = paths["openvino"].path, paths["openvino-int8"].path
    shape = tuple(batches[0]["input_ids"].shape)

    def ort(runner):  # the encoder's onnxruntime session, fed as the encoder feeds it
        return lambda batch: runner({k: torch.from_numpy(v) for k, v in batch.items()}).numpy()

    variants = {
        "torch float32": torch_fp32,
        "onnxruntime float32 (fused)": ort(ort_fp32),
        "onnxruntime int8 (quantize_dynamic)": ort(ort_int8),
        "openvino float32": _openvino(base),
        **(
            {"openvino float32, static shape": _openvino(base, shape)}
            if len({tuple(b["input_ids"].shape) for b in batches}) == 1
            else {}
        ),
        "openvino bfloat16 hint": _openvino(base, INFERENCE_PRECISION_HINT="bf16"),
        "openvino int8 weights, no activation quantisation": _openvino(
            ov_int8, DYNAMIC_QUANTIZATION_GROUP_SIZE=0
        ),
        **{
            f"openvino int8, activation group {g}": _openvino(
                ov_int8, DYNAMIC_QUANTIZATION_GROUP_SIZE=int(g)
            )
            for g in args.groups.split(",")
        },
    }
    as_numpy = {k: (lambda b, f=f: np.asarray(f(b))) for k, f in variants.items()}
    expected = [torch_fp32(b) for b in batches]
    cosines = {}
    for name, run in as_numpy.items():
        out = []
        for batch, ref in zip(batches, expected, strict=True):
            mask = batch["attention_mask"].astype(bool)
            x, y = np.asarray(run(batch))[mask].astype(np.float64), ref[mask].astype(np.float64)
            out.append((x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1))
        cosines[name] = np.concatenate(out)
    wall = {k: [] for k in as_numpy}
    cpu = {k: [] for k in as_numpy}
    for _ in range(args.rounds):
        for name, run in as_numpy.items():
            t, c = time.perf_counter(), time.process_time()
            for batch in batches:
                run(batch)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    n = sum(len(b["input_ids"]) for b in batches)
    meta = h.run_meta(started)
    lines = [
        *h.header_lines(f"CPU backends: the backbone alone, SciFact ({n} documents)", meta),
        f"- Checkpoint `{h.repo_relative(args.checkpoint)}`; batches of 32, shapes "
        f"{sorted({tuple(b['input_ids'].shape) for b in batches})}; {torch.get_num_threads()} "
        f"threads; {args.rounds} interleaved rounds; medians.",
        "",
        "| backbone | wall ms / doc | CPU ms / doc | speed-up vs torch (median of per-round "
        "wall ratios) | token cosine to torch float32, min / mean |",
        "|---|---:|---:|---:|---|",
    ]
    first = next(iter(as_numpy))
    for name in as_numpy:
        ratio = statistics.median(a / b for a, b in zip(wall[first], wall[name], strict=True))
        c = cosines[name]
        lines.append(
            f"| {name} | {1e3 * statistics.median(wall[name]) / n:.1f} | "
            f"{1e3 * statistics.median(cpu[name]) / n:.1f} | {ratio:.2f} | "
            f"{c.min():.5f} / {c.mean():.5f} |"
        )
    md = "\n".join(lines) + "\n"
    stem = h.result_stem("backends", f"{args.data.name}{n}", started, args.tag or "backbone")
    h.save_result(args.results_dir, stem, md, None)
    print(md)


if __name__ == "__main__":
    main()
