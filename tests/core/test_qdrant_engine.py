"""Qdrant's own engine (Qdrant Edge, in process) agrees with the layout QdrantIndex relies on.

qdrant-client's local mode, which the QdrantIndex tests use, re-implements Qdrant in Python. This
checks the Rust engine a server runs: a ``DOT`` multivector with the ``MAX_SIM`` comparator
ranks and scores as brute-force MaxSim, the ``"mean"`` first stage (prefetch by the pooled vector,
rescoring on the multivector) returns what QdrantIndex returns in local mode, and payload filters
hold, on SciFact passages encoded by the tiny test checkpoint.
"""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient

from late_interaction import QdrantIndex
from late_interaction._qdrant.collection import MEAN, MULTIVECTOR, mean_vectors


@pytest.fixture(scope="module")
def passages(scifact_dir, tiny_pylate_model):
    with open(scifact_dir / "corpus.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in islice(f, 150)]
    texts = [f"{r['title']} {r['text']}" for r in records]
    return [str(r["_id"]) for r in records], texts, tiny_pylate_model.encode_documents(texts)


def test_engine_maxsim_and_mean_first_stage_match(tmp_path, passages, tiny_pylate_model, ref):
    ids, texts, embs = passages
    dim = tiny_pylate_model.dim
    maxsim = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)
    no_graph = qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10)
    vectors = {
        MULTIVECTOR: qe.EdgeVectorParams(
            size=dim, distance=qe.Distance.Dot, multivector_config=maxsim, hnsw_config=no_graph
        ),
        MEAN: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot),
    }
    shard = qe.EdgeShard.create(str(tmp_path / "shard"), qe.EdgeConfig(vectors=vectors))
    means = mean_vectors(embs)
    points = [
        qe.Point(i, {MULTIVECTOR: m.tolist(), MEAN: means[i]}, {"metadata": {"group": i % 3}})
        for i, m in enumerate(embs)
    ]
    shard.update(qe.UpdateOperation.upsert_points(points))
    local = QdrantIndex(tiny_pylate_model, client=QdrantClient(":memory:"), first_stage="mean")
    local.add_embeddings(embs, texts, ids, [{"group": i % 3} for i in range(len(ids))])
    docs = dict(zip(ids, embs, strict=True))
    # An int field: qdrant-edge-py 0.9.0 reads MatchValue(True) as 1, which no JSON true matches.
    group = qe.Filter(must=[qe.FieldCondition(key="metadata.group", match=qe.MatchValue(1))])
    for q in ["cell protein gene", "the study of blue water", "what model data"]:
        qm = tiny_pylate_model.encode_queries([q])[0]
        expected = ref.brute_force(qm, docs, 10)
        request = qe.QueryRequest(limit=10, query=qe.Query.Nearest(qm.tolist(), using=MULTIVECTOR))
        got = shard.query(request)
        assert [ids[p.id] for p in got] == [i for i, _ in expected]
        np.testing.assert_allclose([p.score for p in got], [s for _, s in expected], atol=1e-4)
        prefetch = qe.Prefetch(limit=20, query=qe.Query.Nearest(mean_vectors([qm])[0], using=MEAN))
        staged = shard.query(
            qe.QueryRequest(
                limit=10,
                prefetches=[prefetch],
                filter=group,
                query=qe.Query.Nearest(qm.tolist(), using=MULTIVECTOR),
            )
        )
        hits = local.search(qm, 10, prefetch_limit=20, filter={"group": 1})
        assert [ids[p.id] for p in staged] == [h.id for h in hits]
        assert hits and all(ids.index(h.id) % 3 == 1 for h in hits)
    shard.close()
