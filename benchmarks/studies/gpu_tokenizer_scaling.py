"""How fast the Rust tokenizer alone goes on a many-core host.

Rayon threads (``RAYON_NUM_THREADS``, one fresh process each), concurrent calls from Python
threads, and worker processes. Run from the repository root on the device tool, carrying
``.cache/gpu13`` (see ``gpu.py``)::

    python3 benchmarks/studies/gpu_tokenizer_scaling.py             # threads and processes
    python3 benchmarks/studies/gpu_tokenizer_scaling.py normalisers # the ASCII twin, flash

Texts are cut to 1,200 characters (about what ``precut.py`` leaves of a SciFact passage) and
truncated to 180 tokens, in groups of 1,024 (``batches.GROUP_BATCHES`` x 256). Prints one line
per setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(".cache/gpu13")
CUT, MAX_LENGTH, GROUP = 1200, 180, 1024
_TOKENIZER = None


def _texts() -> list[str]:
    with open(ROOT / "scifact-docs.jsonl") as f:
        texts = [json.loads(line)["text"] for line in f]
    return [t[:CUT] for t in texts * 2]


def _tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ROOT / "whl/ckpt-fp16/tokenizer.json"))
    tok.enable_truncation(MAX_LENGTH)
    tok.no_padding()
    return tok


def _rate(label: str, n_texts: int, n_tokens: int, seconds: float) -> None:
    docs, tokens = n_texts / seconds, n_tokens / seconds / 1e6
    print(f"{label}: {docs:.0f} docs/s {tokens:.2f}M tok/s", flush=True)


def rayon() -> None:
    """One process: groups encoded by 1, 2 or 4 concurrent Python threads."""
    tok, texts = _tokenizer(), _texts()
    groups = [texts[i : i + GROUP] for i in range(0, len(texts), GROUP)]
    for concurrent in (1, 2, 4):
        for _ in range(2):  # the second round is reported (warm)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(concurrent) as ex:
                out = list(ex.map(tok.encode_batch_fast, groups))
            seconds = time.perf_counter() - t0
        n_tokens = sum(len(e) for group in out for e in group)
        threads = os.environ.get("RAYON_NUM_THREADS", "all")
        _rate(f"RAYON={threads} concurrent_calls={concurrent}", len(texts), n_tokens, seconds)


def _work(group: list[str]) -> np.ndarray:
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = _tokenizer()
    encodings = _TOKENIZER.encode_batch_fast(group)
    ids = np.zeros((len(encodings), max(len(e) for e in encodings)), np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e)] = e.ids
    return ids


def processes() -> None:
    """Worker processes, each with its own tokenizer and 16 / n rayon threads."""
    texts = _texts()
    groups = [texts[i : i + 256] for i in range(0, len(texts), 256)]
    for n in (2, 4, 8, 16):
        os.environ["RAYON_NUM_THREADS"] = str(max(1, 16 // n))
        with ProcessPoolExecutor(n) as ex:
            list(ex.map(_work, groups[: n * 2]))  # start-up and warm-up
            t0 = time.perf_counter()
            out = list(ex.map(_work, groups))
            seconds = time.perf_counter() - t0
        n_tokens = sum(int((ids != 0).sum()) for ids in out)
        _rate(f"procs={n} rayon={16 // n}", len(texts), n_tokens, seconds)


def normalisers() -> None:
    """All cores: the tokenizer as is, with the ASCII twin (``ascii_twin.py``) as the library
    routes texts, and flash-tokenizer (if installed; not a dependency) on the same texts."""
    from late_interaction._encoding.ascii_twin import ascii_twin, split_by_ascii

    tok, texts = _tokenizer(), _texts()
    twin = ascii_twin(tok)
    routed = split_by_ascii(tok.encode_batch_fast, twin.encode_batch_fast)
    reference = [e.ids for e in tok.encode_batch_fast(texts)]
    n_tokens = sum(map(len, reference))
    print(f"texts {len(texts)}, ASCII {sum(t.isascii() for t in texts)}", flush=True)
    encoders = {"as is": tok.encode_batch_fast, "ASCII twin, routed": routed}
    try:
        from flash_tokenizer._core import FlashBertTokenizer

        spec = json.loads(tok.to_str())["model"]["vocab"]
        vocab = Path("/tmp/flash-vocab.txt")
        vocab.write_text("\n".join(sorted(spec, key=spec.get)) + "\n")
        flash = FlashBertTokenizer(str(vocab), True, MAX_LENGTH, True)
        encoders["flash-tokenizer, OpenMP"] = lambda b: flash.batch_encode(
            b, "longest", MAX_LENGTH, True
        )
    except ImportError:
        print("flash-tokenizer not installed", flush=True)
    for label, encode in encoders.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            out = encode(texts)
            best = min(best, time.perf_counter() - t0)
        ids = [list(e.ids) if hasattr(e, "ids") else [i for i in e if i != 0] for e in out]
        same = sum(a == b for a, b in zip(ids, reference, strict=True))
        _rate(f"{label} (ids equal: {same}/{len(texts)})", len(texts), n_tokens, best)


def main() -> None:
    print("cpus", os.cpu_count(), flush=True)
    for threads in ("1", "2", "4", "8", "16", None):
        env = {k: v for k, v in os.environ.items() if k != "RAYON_NUM_THREADS"}
        if threads:
            env["RAYON_NUM_THREADS"] = threads
        subprocess.run([sys.executable, __file__, "rayon"], env=env, check=True)
    subprocess.run([sys.executable, __file__, "processes"], check=True)


if __name__ == "__main__":
    {"rayon": rayon, "processes": processes, "normalisers": normalisers}.get(
        sys.argv[1] if len(sys.argv) > 1 else "", main
    )()
