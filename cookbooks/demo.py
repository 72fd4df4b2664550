"""The main job: late-interaction search and rerank on the embedded model, fully offline.

Indexes the bundled sample corpus (Python language-reference passages, see data/SOURCE.md) with
the embedded all-MiniLM-L6-v2 used as a token-level encoder, saves the index, reloads it (what a
restarted service does), answers questions with exact MaxSim over Voyager candidates, shows a
keyword search whose answer ColBERT reranking lifts to the top, and counts, over 25 questions
written for this corpus (data/questions.jsonl), how often each way puts the answer first.

Usage: python cookbooks/demo.py [--index-dir DIR] [--query "..."]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from late_interaction import ColBERT, LateInteractionIndex

DATA = Path(__file__).resolve().parent / "data"
QUESTIONS = [
    "What does the assert statement do?",
    "How do I rebind a variable from an enclosing function scope?",
    # BM25 ranks this one's answer (in-2) 27th: "class", "operator" and "defining" are common
    # words here, and in-2 says "__iter__" and "__contains__" rather than "support".
    "How can a class support the in operator without defining __contains__?",
]
# BM25 puts exceptions-1 first (it repeats "raise" and "exception"); the answer, raise-0, says
# "re-raises the exception that is currently being handled", which ColBERT matches word by word.
RERANK_QUESTION = "How does the raise statement re-raise the current exception?"
FIRST_STAGE = 20  # candidates a first stage hands to the reranker


def read_jsonl(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class BM25:
    """Okapi BM25 (k1=1.5, b=0.75) over lower-cased words: the usual keyword first stage."""

    def __init__(self, texts: list[str]) -> None:
        self.docs = [Counter(self.words(t)) for t in texts]
        self.avg_len = sum(sum(d.values()) for d in self.docs) / len(self.docs)
        df = Counter(w for d in self.docs for w in d)
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    @staticmethod
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    def rank(self, query: str) -> list[int]:
        terms = [w for w in self.words(query) if w in self.idf]

        def score(doc: Counter) -> float:
            norm = 1.5 * (0.25 + 0.75 * sum(doc.values()) / self.avg_len)
            return sum(self.idf[w] * doc[w] * 2.5 / (doc[w] + norm) for w in terms if w in doc)

        scores = [score(d) for d in self.docs]
        return sorted(range(len(self.docs)), key=lambda i: -scores[i])


def show_hits(index: LateInteractionIndex, question: str) -> None:
    print(f"\nQ: {question}")
    for hit in index.search(question, k=3):
        print(f"  {hit.normalized_score:.2f}  {hit.id:<20} {hit.text[:70]}...")


def show_rerank(model: ColBERT, bm25: BM25, docs: list[dict], question: str) -> None:
    candidates = bm25.rank(question)[:FIRST_STAGE]
    texts = [docs[i]["text"] for i in candidates]
    reranked = model.rerank(question, texts, top_k=3, explain=True)
    print(f"\nRerank of BM25's top {FIRST_STAGE} for: {question}")
    print(f"  BM25's order: {', '.join(docs[i]['id'] for i in candidates[:3])}, ...")
    for result in reranked:
        doc = docs[candidates[result.position]]
        print(f"  {result.normalized_score:.2f}  {doc['id']:<16} (BM25 #{result.position + 1})")
    best, text = reranked[0], texts[reranked[0].position]
    pairs = [
        f"{m.query_token}->{text[m.document_span[0] : m.document_span[1]]} {m.similarity:.2f}"
        for m in best.explanation.matches
        if m.query_kind == "text" and m.document_span and m.similarity >= 0.8
    ]
    print(f"  why #1, its closest matches (query -> passage token, cosine): {', '.join(pairs)}")


def first_hit_counts(index: LateInteractionIndex, bm25: BM25, docs: list[dict]) -> Counter:
    """How often the answer comes first: BM25, ColBERT search, BM25 reranked by ColBERT."""
    counts: Counter = Counter()
    for item in read_jsonl("questions.jsonl"):
        question, answers = item["question"], set(item["answers"])
        candidates = [docs[i]["id"] for i in bm25.rank(question)[:FIRST_STAGE]]
        # Reranking = exact MaxSim over the candidates; the index holds their token matrices,
        # so exact search restricted to them reranks without encoding them again.
        reranked = index.search(question, k=1, ids=candidates, exact=True)
        counts["BM25"] += candidates[0] in answers
        counts["ColBERT search"] += index.search(question, k=1)[0].id in answers
        counts[f"BM25 top {FIRST_STAGE}, reranked by ColBERT"] += reranked[0].id in answers
    return counts


def run(index_dir: Path, questions: list[str]) -> None:
    docs = read_jsonl("python_reference.jsonl")
    start = time.perf_counter()
    model = ColBERT.from_pretrained()  # the embedded default: no network needed
    elapsed = time.perf_counter() - start
    print(f"model: embedded all-MiniLM-L6-v2 (token vectors of dim {model.dim}), {elapsed:.1f}s")

    index = LateInteractionIndex(model, index_dir)
    start = time.perf_counter()
    index.add(
        [d["text"] for d in docs],
        ids=[d["id"] for d in docs],
        metadatas=[{"title": d["title"], "topic": d["topic"]} for d in docs],
    )
    index.save()
    print(f"indexed {len(index)} passages in {time.perf_counter() - start:.1f}s, saved")
    index = LateInteractionIndex.load(index_dir, model=model)  # what a restarted service does
    print(
        "\nScores: for each token of the query, the cosine of its best match in the passage, "
        "averaged over the query (1.00: every query token has an identical match)."
    )
    for question in questions:
        show_hits(index, question)

    bm25 = BM25([d["text"] for d in docs])
    show_rerank(model, bm25, docs, RERANK_QUESTION)
    counts = first_hit_counts(index, bm25, docs)
    total = len(read_jsonl("questions.jsonl"))
    print(f"\nAnswer ranked first, over the {total} questions of data/questions.jsonl:")
    for name, n in counts.items():
        print(f"  {name:<36} {n:>2}/{total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=None, help="keep the index here")
    parser.add_argument("--query", action="append", help="a question (repeatable)")
    args = parser.parse_args()
    if args.index_dir is not None:
        run(args.index_dir, args.query or QUESTIONS)
        return
    with tempfile.TemporaryDirectory(prefix="late-interaction-demo-") as tmp:  # removed at exit
        run(Path(tmp) / "index", args.query or QUESTIONS)


if __name__ == "__main__":
    main()
