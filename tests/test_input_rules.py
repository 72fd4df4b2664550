"""The same input rules in the core and every adapter: bare strings, framework mix-ups, bad numbers.

A bare string (or one framework object) where a sequence is expected is one item, never its
characters or fields; the other framework's objects, wrong types and bad counts get an error that
says what was expected and how to fix it.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document as LCDocument
from llama_index.core import Document as LIDocument
from llama_index.core.schema import NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode

from langchain_late_interaction import ColBERTReranker, ColBERTVectorStore
from langchain_late_interaction import ColBERTRetriever as LCRetriever
from late_interaction import LateInteractionIndex
from llama_index.indices.managed.late_interaction import LateInteractionManagedIndex
from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank
from llama_index.retrievers.late_interaction import ColBERTRetriever as LIRetriever

TEXT = "The nonlocal statement rebinds a name of an enclosing function scope."
OTHER = "Generators yield values lazily."
QUERY = "enclosing scope"


def node(text: str, node_id: str, ref: str | None = None) -> TextNode:
    relationships = {}
    if ref is not None:
        relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=ref)}
    return TextNode(text=text, id_=node_id, relationships=relationships)


@pytest.fixture(scope="module")
def model(tiny_pylate_model):
    return tiny_pylate_model


# --- a bare string (or one object) is one item --------------------------------------------


def test_core_bare_string_is_one_document(model):
    index = LateInteractionIndex(model)
    assert len(index.add(TEXT)) == 1 and index.get(index.ids)[0].text == TEXT
    assert len(model.encode_documents(TEXT)) == 1
    assert [r.position for r in model.rerank(QUERY, TEXT)] == [0]


def test_langchain_bare_string_and_single_document_are_one(model):
    retriever = LCRetriever.from_texts(TEXT, model=model)
    assert [d.page_content for d in retriever.invoke(QUERY)] == [TEXT]
    retriever.add_texts(OTHER, ids="gen")  # ids as a bare string too
    retriever.add_documents(LCDocument(page_content="Lambdas are anonymous.", id="lambda"))
    assert len(retriever.index) == 3 and {"gen", "lambda"} <= set(retriever.index.ids)
    retriever.delete("gen")
    assert "gen" not in retriever.index and len(retriever.index) == 2
    one = LCRetriever.from_documents(LCDocument(page_content=TEXT, id="t"), model=model)
    assert one.index.ids == ["t"]

    reranker = ColBERTReranker(model=model)
    assert [d.page_content for d in reranker.compress_documents(TEXT, QUERY)] == [TEXT]
    assert [r["index"] for r in reranker.rerank(TEXT, QUERY)] == [0]


def test_langchain_vector_store_bare_string_and_single_document_are_one(model):
    store = ColBERTVectorStore.from_texts(TEXT, model=model, ids="t")
    assert store.index.ids == ["t"]
    store.add_texts(OTHER, ids="gen")
    store.add_documents(LCDocument(page_content="Lambdas are anonymous.", id="lambda"))
    assert [d.id for d in store.get_by_ids("gen")] == ["gen"]
    store.delete("gen")  # one id, not the ids "g", "e", "n"
    assert sorted(store.index.ids) == ["lambda", "t"]
    one = ColBERTVectorStore.from_documents(LCDocument(page_content=TEXT, id="d"), model=model)
    assert one.index.ids == ["d"]


def test_llamaindex_managed_index_single_document_and_node_are_one(model):
    index = LateInteractionManagedIndex.from_documents(
        LIDocument(text=TEXT, doc_id="a"), model=model
    )
    assert len(index.core_index) == 1
    index.insert_nodes(node(OTHER, "gen"))
    index.insert(LIDocument(text="Lambdas are anonymous.", doc_id="b"))
    assert "gen" in index.core_index and len(index.core_index) == 3
    built = LateInteractionManagedIndex(nodes=node(TEXT, "t"), model=model)
    assert built.core_index.ids == ["t"]


def test_llamaindex_bare_string_and_single_node_are_one(model):
    retriever = LIRetriever.from_defaults(nodes=node(TEXT, "t", ref="doc-a"), model=model)
    assert retriever.index.ids == ["t"]
    retriever.insert_nodes(node(OTHER, "gen", ref="doc-b"))
    retriever.insert_nodes(node("Lambdas are anonymous.", "lambda", ref="doc-b"))
    assert sorted(retriever.index.ids) == ["gen", "lambda", "t"]
    only = LIRetriever(retriever.index, node_ids="gen")
    assert [n.node.node_id for n in only.retrieve(QUERY)] == ["gen"]
    by_doc = LIRetriever(retriever.index, doc_ids="doc-b")
    assert sorted(n.node.node_id for n in by_doc.retrieve(QUERY)) == ["gen", "lambda"]
    retriever.delete_nodes("lambda")
    assert sorted(retriever.index.ids) == ["gen", "t"]

    split = LIRetriever.from_defaults(documents=LIDocument(text=TEXT, doc_id="d"), model=model)
    assert {n.node.ref_doc_id for n in split.retrieve(QUERY)} == {"d"}

    out = ColBERTRerank(model=model).postprocess_nodes(TEXT, query_str=QUERY)
    assert [n.node.get_content() for n in out] == [TEXT]


# --- plain strings and bare nodes are accepted by the rerankers -----------------------------


def test_rerankers_accept_plain_strings_and_bare_nodes(model):
    texts = [OTHER, TEXT]
    expected = [r.position for r in model.rerank(QUERY, texts)]
    lc = ColBERTReranker(model=model, top_n=None).compress_documents(texts, QUERY)
    assert [d.page_content for d in lc] == [texts[i] for i in expected]
    assert all(isinstance(d, LCDocument) and "relevance_score" in d.metadata for d in lc)

    nodes = [node(t, f"n{i}") for i, t in enumerate(texts)]
    rerank = ColBERTRerank(model=model, top_n=2)
    from_strings = rerank.postprocess_nodes(texts, query_str=QUERY)
    from_nodes = rerank.postprocess_nodes(nodes, query_str=QUERY)
    from_scored = rerank.postprocess_nodes([NodeWithScore(node=n) for n in nodes], query_str=QUERY)
    assert [n.node.get_content() for n in from_strings] == [texts[i] for i in expected]
    assert [n.node.node_id for n in from_nodes] == [f"n{i}" for i in expected]
    assert [(n.node.node_id, n.score) for n in from_nodes] == [
        (n.node.node_id, n.score) for n in from_scored
    ]


# --- mix-ups: a clear error naming what was expected and the fix ----------------------------

LC_DOC = LCDocument(page_content=TEXT, id="lc")
LI_NODE = node(TEXT, "li")


def mixups(model, li_retriever, lc_retriever, lc_store):
    """(call, error type, message pattern) for each mix-up a new user runs into."""
    from_langchain = r"got langchain_core's Document\. .*Document\.from_langchain_format"
    from_llama = r"got llama_index's TextNode\. .*Document\(page_content=node\.get_content\(\)"
    return {
        "LC Document into LlamaIndex from_defaults": (
            lambda: LIRetriever.from_defaults(nodes=[LC_DOC], model=model),
            TypeError,
            r"nodes\[0\] must be a LlamaIndex node .*" + from_langchain,
        ),
        "LC Document into LlamaIndex documents=": (
            lambda: LIRetriever.from_defaults(documents=[LC_DOC], model=model),
            TypeError,
            from_langchain,
        ),
        "LC Document into insert_nodes": (
            lambda: li_retriever.insert_nodes([LC_DOC]),
            TypeError,
            from_langchain,
        ),
        "LC Document into ColBERTRerank": (
            lambda: ColBERTRerank(model=model).postprocess_nodes([LC_DOC], query_str=QUERY),
            TypeError,
            r"must be a NodeWithScore, a LlamaIndex node or a str; " + from_langchain,
        ),
        "LC Document into LateInteractionManagedIndex.from_documents": (
            lambda: LateInteractionManagedIndex.from_documents([LC_DOC], model=model),
            TypeError,
            r"documents\[0\] must be a LlamaIndex node .*" + from_langchain,
        ),
        "LC Document into LateInteractionManagedIndex.insert": (
            lambda: LateInteractionManagedIndex(model=model).insert(LC_DOC),
            TypeError,
            r"document must be a LlamaIndex node .*" + from_langchain,
        ),
        "TextNode into ColBERTVectorStore.add_documents": (
            lambda: ColBERTVectorStore(model=model).add_documents([LI_NODE]),
            TypeError,
            r"documents\[0\] must be a LangChain Document; " + from_llama,
        ),
        "unknown ColBERTVectorStore search argument": (
            lambda: lc_store.similarity_search(QUERY, score_threshold=0.5),
            TypeError,
            r"Unsupported search argument\(s\) \['score_threshold'\]; ColBERTVectorStore",
        ),
        "text into LlamaIndex nodes=": (
            lambda: LIRetriever.from_defaults(nodes=[TEXT], model=model),
            TypeError,
            r"got str\. Wrap a text as TextNode\(text=text\)",
        ),
        "TextNode into LangChain from_documents": (
            lambda: LCRetriever.from_documents([LI_NODE], model=model),
            TypeError,
            r"documents\[0\] must be a LangChain Document; " + from_llama,
        ),
        "TextNode into add_documents": (
            lambda: lc_retriever.add_documents(LI_NODE),
            TypeError,
            r"documents must be a LangChain Document; " + from_llama,
        ),
        "TextNode into compress_documents": (
            lambda: ColBERTReranker(model=model).compress_documents([LI_NODE], QUERY),
            TypeError,
            r"must be a LangChain Document or a str; " + from_llama,
        ),
        "NodeWithScore into compress_documents": (
            lambda: ColBERTReranker(model=model).compress_documents(
                [NodeWithScore(node=LI_NODE)], QUERY
            ),
            TypeError,
            r"got llama_index's NodeWithScore\. That is a LlamaIndex object",
        ),
        "text into add_documents": (
            lambda: lc_retriever.add_documents([TEXT]),
            TypeError,
            r"got str\. Wrap a text: Document\(page_content=text\)",
        ),
        "similarity_top_k as a string": (
            lambda: LIRetriever(li_retriever.index, similarity_top_k="5"),
            ValueError,
            "similarity_top_k must be a positive integer; got '5'",
        ),
        "similarity_top_k as a float": (
            lambda: LIRetriever(li_retriever.index, similarity_top_k=2.5),
            ValueError,
            "similarity_top_k must be a positive integer; got 2.5",
        ),
        "LlamaIndex retriever over a VectorStoreIndex-like object": (
            lambda: LIRetriever({"not": "an index"}),
            TypeError,
            "index must be a late_interaction.LateInteractionIndex.*from_defaults",
        ),
        "ColBERTRerank top_n as a string": (
            lambda: ColBERTRerank(model=model, top_n="3"),
            ValueError,
            "top_n must be a positive integer; got '3'",
        ),
        "ColBERTRerank top_n=0": (
            lambda: ColBERTRerank(model=model, top_n=0),
            ValueError,
            "top_n must be a positive integer; got 0",
        ),
        "ColBERTRerank model=123 (never a Hub id)": (
            lambda: ColBERTRerank(model=123),
            TypeError,
            "model must be None .*a checkpoint name or path, or a loaded encoder.*got int",
        ),
        "ColBERTReranker top_n=0": (
            lambda: ColBERTReranker(model=model, top_n=0),
            ValueError,
            r"top_n must be a positive integer or None; got 0",
        ),
        "ColBERTReranker top_n as a word": (
            lambda: ColBERTReranker(model=model, top_n="three"),
            ValueError,
            r"top_n must be a positive integer or None; got 'three'",
        ),
        "LangChain k=0": (
            lambda: LCRetriever(index=lc_retriever.index, k=0),
            ValueError,
            "k must be a positive integer; got 0",
        ),
        "LangChain invoke(k='2')": (
            lambda: lc_retriever.invoke(QUERY, k="2"),
            ValueError,
            "k must be a positive integer; got '2'",
        ),
        "LangChain unknown search argument": (
            lambda: lc_retriever.invoke(QUERY, top_k=2),
            TypeError,
            r"Unsupported search argument\(s\) \['top_k'\]; ColBERTRetriever accepts \[.*'k'",
        ),
        "LangChain search_type='mmr'": (
            lambda: LCRetriever(index=lc_retriever.index, search_type="mmr"),
            ValueError,
            r"search_type must be one of \['similarity', 'similarity_score_threshold'\]",
        ),
    }


@pytest.fixture(scope="module")
def retrievers(model):
    li = LIRetriever.from_defaults(nodes=[node(TEXT, "t"), node(OTHER, "g")], model=model)
    lc = LCRetriever.from_texts([TEXT, OTHER], model=model)
    return li, lc, ColBERTVectorStore(lc.index)


CASES = list(mixups(None, None, None, None))


@pytest.mark.parametrize("case", CASES)
def test_mixups_get_a_clear_error(case, model, retrievers):
    call, error, pattern = mixups(model, *retrievers)[case]
    with pytest.raises(error, match=pattern):
        call()
