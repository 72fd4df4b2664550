"""Does the two-level assignment shape change the codec? Reconstruction per shape and seed.

The codec is trained as the first ``add`` of ``compressed_scale`` trains it (the first 5,000
passages, a 2**18-token sample, 8,192 centroids, nbits=2), once per two-level shape (k-means and
encoding both use it) and k-means seed; then 2,000 later (synthetic) passages are encoded and
decoded, and the cosine of each decoded token with its original is reported, with the cosine to
its centroid alone and the training residual.

    PYTHONPATH=integrations python -m benchmarks.studies.compressed_shape_codec
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

import late_interaction._index.codec as codec_module
import late_interaction._index.kmeans as kmeans_module
from benchmarks import _harness as h
from benchmarks.studies.compressed_scale import Passages

ORIGINAL = kmeans_module.NearestCentroid
SHAPES = {  # name -> (groups for k centroids, overlap)
    "sqrt(k)/2 pow2 x 4 (before ccf5415)": (lambda k: 2 ** round(math.log2(math.sqrt(k) / 2)), 4),
    "sqrt(2k) x 5 (library)": (lambda k: max(1, round(math.sqrt(2 * k))), 5),
    "sqrt(2k) x 8": (lambda k: max(1, round(math.sqrt(2 * k))), 8),
}


def shaped(groups, default_overlap: int) -> type:
    """``NearestCentroid`` with another default shape (explicit arguments still win)."""

    class Shaped(ORIGINAL):  # type: ignore[misc, valid-type]
        def __init__(self, centroids, *, exact=False, seed=1, n_groups=None, overlap=None):
            n = groups(centroids.shape[0]) if n_groups is None else n_groups
            o = default_overlap if overlap is None else overlap
            super().__init__(centroids, exact=exact, seed=seed, n_groups=n, overlap=o)

    return Shaped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, default=h.CACHE / "compressed-scale-1m" / "d128-w100")
    p.add_argument("--seeds", default="1,2,3")
    args = p.parse_args()
    data = argparse.Namespace(passage_tokens=100, segments=4, noise=0.02, seed=0)
    source = Passages(args.folder, data)
    first = np.concatenate(source.chunk(0, 5000)).astype(np.float32)
    rng = np.random.default_rng(0)
    train = first[rng.choice(len(first), 2**18, replace=False)]
    test = np.concatenate(source.chunk(600_000, 602_000)).astype(np.float32)
    print(f"train {train.shape}, test {test.shape} (passages 600,000-601,999)")
    print("| shape | seed | train CPU s | training residual | decoded cos mean | p05 | "
          "centroid cos mean |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    try:
        for name, (groups, overlap) in SHAPES.items():
            kmeans_module.NearestCentroid = codec_module.NearestCentroid = shaped(groups, overlap)
            for seed in map(int, args.seeds.split(",")):
                t0 = time.process_time()
                codec = codec_module.ResidualCodec.train(train, 2, n_centroids=8192, seed=seed)
                cpu = time.process_time() - t0
                codes, packed = codec.encode(test)
                cos = np.einsum("ij,ij->i", codec.decode(codes, packed), test)
                centroid = np.einsum("ij,ij->i", codec.centroids[codes.astype(np.int64)], test)
                print(f"| {name} | {seed} | {cpu:.1f} | {codec.trained_residual:.4f} "
                      f"| {cos.mean():.5f} | {np.quantile(cos, 0.05):.4f} "
                      f"| {centroid.mean():.4f} |", flush=True)  # fmt: skip
    finally:
        kmeans_module.NearestCentroid = codec_module.NearestCentroid = ORIGINAL


if __name__ == "__main__":
    main()
