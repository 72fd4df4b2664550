"""Fixtures for the LlamaIndex adapter tests: a tiny locally built encoder and real passages.

The encoder and the shared corpus index are built once per session (encoding is the slow part);
tests that write to an index build their own small one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

CORPUS = Path(__file__).resolve().parents[2] / "cookbooks" / "data" / "python_reference.jsonl"
N_PASSAGES = 39  # every third record: 39 passages over ~39 topics


def make_nodes(step: int = 3) -> list[TextNode]:
    """Real passages as TextNodes with metadata of several types; every 3 share a SOURCE."""
    records = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    nodes = []
    for i, rec in enumerate(records[::step]):
        n = int(rec["id"].rsplit("-", 1)[1])
        nodes.append(
            TextNode(
                id_=rec["id"],
                text=rec["text"],
                metadata={
                    "topic": rec["topic"],
                    "title": rec["title"],
                    "n": n,
                    "rank": float(i) / 2,
                    "tags": [rec["topic"], "even" if i % 2 == 0 else "odd"],
                    "note": "" if i % 5 == 0 else f"passage {i}",
                },
                excluded_embed_metadata_keys=["rank", "tags", "note", "n"],
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{i // 3}")},
            )
        )
    return nodes


@pytest.fixture(scope="session")
def colbert(tiny_pylate_model):
    """The tiny PyLate-format checkpoint (fast; adapter tests check translation, not quality)."""
    return tiny_pylate_model


@pytest.fixture(scope="session")
def nodes() -> list[TextNode]:
    return make_nodes()


@pytest.fixture(scope="session")
def corpus_index(colbert, nodes):
    """A core index over ``nodes`` built through the retriever (read-only in tests)."""
    from llama_index.retrievers.late_interaction import ColBERTRetriever

    return ColBERTRetriever.from_defaults(nodes=nodes, model=colbert).index


@pytest.fixture(scope="session")
def qdrant_corpus_path(tmp_path_factory) -> Path:
    """The local-mode folder of ``qdrant_corpus_index``."""
    return tmp_path_factory.mktemp("qdrant") / "db"


@pytest.fixture(scope="session")
def qdrant_corpus_index(colbert, nodes, qdrant_corpus_path):
    """The same corpus in a ``QdrantIndex`` (local mode on disk, so it can be reopened)."""
    from qdrant_client import QdrantClient

    from late_interaction import QdrantIndex
    from llama_index.retrievers.late_interaction import ColBERTRetriever

    client = QdrantClient(path=str(qdrant_corpus_path))
    index = QdrantIndex(colbert, client=client, collection_name="nodes")
    ColBERTRetriever(index).insert_nodes(nodes)
    yield index
    client.close()


@pytest.fixture(params=["in_process", "qdrant"])
def backend_index(request):
    """The corpus index of each backend in turn (read-only in tests)."""
    name = "corpus_index" if request.param == "in_process" else "qdrant_corpus_index"
    return request.getfixturevalue(name)
