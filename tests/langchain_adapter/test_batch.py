"""ColBERTRetriever.batch / abatch: one search_batch for the batch, one retriever run per query."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.callbacks import BaseCallbackHandler

QUERIES = [
    "What happens when a module is imported?",
    "How do I read a file line by line?",
    "What is a generator?",
]


class RunCounter(BaseCallbackHandler):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended = 0

    def on_retriever_start(self, serialized, query, **kwargs):
        self.started.append(query)

    def on_retriever_end(self, documents, **kwargs):
        self.ended += 1


@pytest.fixture
def counted(corpus_retriever, monkeypatch):
    """The corpus retriever with its index's search calls counted (behaviour unchanged)."""
    calls = {"search": 0, "search_batch": 0}
    index = corpus_retriever.index
    for name in calls:
        method = getattr(index, name)

        def wrapper(*args, _method=method, _name=name, **kwargs):
            calls[_name] += 1
            return _method(*args, **kwargs)

        monkeypatch.setattr(index, name, wrapper)
    return corpus_retriever, calls


def summary(docs):
    return [(d.id, round(d.metadata["relevance_score"], 5)) for d in docs]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_batch_is_one_search_batch_with_one_run_per_query(counted, mode):
    retriever, calls = counted
    expected = [summary(retriever.invoke(q, k=3, filter={"odd": True})) for q in QUERIES]
    calls.update(search=0, search_batch=0)
    counter = RunCounter()
    config = {"callbacks": [counter]}
    if mode == "sync":
        got = retriever.batch(QUERIES, config, k=3, filter={"odd": True})
    else:
        got = asyncio.run(retriever.abatch(QUERIES, config, k=3, filter={"odd": True}))
    assert [summary(docs) for docs in got] == expected
    assert all(d.metadata["odd"] for docs in got for d in docs)
    assert calls == {"search": 0, "search_batch": 1}
    assert sorted(counter.started) == sorted(QUERIES) and counter.ended == len(QUERIES)


def test_batch_with_a_bad_input_reports_it_per_query(counted):
    retriever, _ = counted
    out = retriever.batch([QUERIES[0], 42], return_exceptions=True)  # type: ignore[list-item]
    assert [d.id for d in out[0]] == [d.id for d in retriever.invoke(QUERIES[0])]
    assert isinstance(out[1], Exception)
    with pytest.raises(ValueError, match="k"):
        retriever.batch(QUERIES, k=0)
