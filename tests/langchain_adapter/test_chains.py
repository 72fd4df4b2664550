"""End-to-end LCEL: retriever -> prompt -> fake chat model -> parser; retriever + reranker."""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import (
    ParrotFakeChatModel,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from langchain_late_interaction import ColBERTReranker

QUESTION = "How do I catch an exception?"
PROMPT = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")


def format_docs(docs: list[Document]) -> str:
    return "\n".join(f"[{d.id}] {d.page_content}" for d in docs)


class FirstN(BaseRetriever):
    """A deliberately naive first-stage retriever: the first ``n`` documents, in corpus order."""

    docs: list[Document]
    n: int

    def _get_relevant_documents(self, query, *, run_manager):
        return self.docs[: self.n]


def test_retriever_in_a_chain_feeds_the_model_its_documents(corpus_retriever):
    # The parrot model answers with the prompt it received, so the output shows what the chain
    # actually passed through: the retrieved documents, formatted, in rank order.
    chain = (
        {"context": corpus_retriever | format_docs, "question": RunnablePassthrough()}
        | PROMPT
        | ParrotFakeChatModel()
        | StrOutputParser()
    )
    answer = chain.invoke(QUESTION)
    expected = format_docs(corpus_retriever.invoke(QUESTION))
    assert answer == f"Context:\n{expected}\n\nQuestion: {QUESTION}"


async def test_retriever_and_reranker_composition(colbert, documents):
    first_stage = FirstN(docs=documents, n=6)
    reranker = ColBERTReranker(model=colbert, top_n=3)
    pipeline = reranker.with_retriever(first_stage)
    expected = reranker.compress_documents(documents[:6], QUESTION)

    got = pipeline.invoke(QUESTION)
    assert [(d.id, d.metadata) for d in got] == [(d.id, d.metadata) for d in expected]
    assert {d.id for d in got} <= {d.id for d in documents[:6]}
    assert (await pipeline.ainvoke(QUESTION)) == got
    assert pipeline.batch([QUESTION, QUESTION]) == [got, got]

    # The documented plain-LCEL recipe gives the same result.
    recipe = {"documents": first_stage, "query": RunnablePassthrough()} | RunnableLambda(
        lambda x: reranker.compress_documents(x["documents"], x["query"])
    )
    assert recipe.invoke(QUESTION) == got

    # And the composition drops into a chain like any retriever.
    chain = {"context": pipeline | format_docs, "question": RunnablePassthrough()} | PROMPT
    assert format_docs(got) in chain.invoke(QUESTION).to_string()
