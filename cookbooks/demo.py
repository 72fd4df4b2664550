"""The main job: late-interaction search and rerank on the embedded model, fully offline.

Indexes the bundled sample corpus (Python language-reference passages, see data/SOURCE.md) with
the embedded all-MiniLM-L6-v2 used as a token-level encoder, saves the index, reloads it, answers a
few questions with exact MaxSim over Voyager candidates, and reranks a keyword search's hits.

Usage: python cookbooks/demo.py [--index-dir DIR] [--query "..."]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from late_interaction import ColBERT, LateInteractionIndex

CORPUS = Path(__file__).resolve().parent / "data" / "python_reference.jsonl"
QUESTIONS = [
    "What does the assert statement do?",
    "What happens when an exception is raised inside a with statement?",
    "How do I write a function that takes a variable number of arguments?",
]


def load_corpus() -> list[dict]:
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def keyword_hits(query: str, docs: list[dict], n: int = 10) -> list[int]:
    """A naive keyword overlap ranking, standing in for any first-stage retriever."""
    words = {w.strip("?.,").lower() for w in query.split() if len(w) > 3}
    overlap = [len(words & set(d["text"].lower().split())) for d in docs]
    return sorted(range(len(docs)), key=lambda i: -overlap[i])[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None, help="where to save the index")
    parser.add_argument("--query", action="append", help="a question (repeatable)")
    args = parser.parse_args()
    questions = args.query or QUESTIONS
    docs = load_corpus()

    start = time.perf_counter()
    model = ColBERT.from_pretrained()  # the embedded default: no network needed
    elapsed = time.perf_counter() - start
    print(f"model: {model.name_or_path} (dim {model.dim}) loaded in {elapsed:.1f}s")

    index_dir = args.index_dir or Path(tempfile.mkdtemp(prefix="late-interaction-demo-"))
    index = LateInteractionIndex(model, index_dir)
    start = time.perf_counter()
    index.add(
        [d["text"] for d in docs],
        ids=[d["id"] for d in docs],
        metadatas=[{"title": d["title"], "topic": d["topic"]} for d in docs],
    )
    index.save()
    print(f"indexed {len(index)} passages in {time.perf_counter() - start:.1f}s -> {index_dir}")

    index = LateInteractionIndex.load(index_dir, model=model)  # what a restarted service does
    for question in questions:
        print(f"\nQ: {question}")
        for hit in index.search(question, k=3):
            print(f"  {hit.score:6.2f}  [{hit.id}] {hit.metadata['title']}: {hit.text[:90]}...")

    question = questions[0]
    candidates = keyword_hits(question, docs)
    reranked = model.rerank(question, [docs[i]["text"] for i in candidates], top_k=3)
    print(f"\nRerank of a keyword search's top {len(candidates)} for: {question}")
    for result in reranked:
        doc = docs[candidates[result.position]]
        print(f"  {result.score:6.2f}  [{doc['id']}] (keyword rank {result.position + 1})")


if __name__ == "__main__":
    main()
