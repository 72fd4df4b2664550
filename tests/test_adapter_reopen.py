"""Every adapter's reopen path passes the core's load options through.

``trust_remote_model`` (consent to rebuild an encoder a folder names by Hub id) and ``verify``
(hash the memory-mapped token arrays) are the core's ``LateInteractionIndex.load`` options; a user
reopening through LangChain or LlamaIndex needs them too. Each case saves through the adapter,
then checks the refusal without consent, the rebuild with it, and that ``verify=False`` loads a
folder whose token array has a flipped low bit while the default refuses it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.core.conftest import FakeEncoder
from tests.core.test_bad_checkpoints import _HubNamed  # its fingerprint names a Hub repository

from late_interaction import ColBERT, IndexFormatError


def _langchain_retriever(model, folder: Path):
    from langchain_late_interaction import ColBERTRetriever

    ColBERTRetriever.from_texts(["w1 w2", "w3 w4"], ids=["a", "b"], model=model).save(folder)
    return folder, lambda **kw: ColBERTRetriever.load(folder, **kw).index


def _langchain_vectorstore(model, folder: Path):
    from langchain_late_interaction import ColBERTVectorStore

    ColBERTVectorStore.from_texts(["w1 w2", "w3 w4"], ids=["a", "b"], model=model).save(folder)
    return folder, lambda **kw: ColBERTVectorStore.load(folder, **kw).index


def _llamaindex_retriever(model, folder: Path):
    from llama_index.core.schema import TextNode

    from llama_index.retrievers.late_interaction import ColBERTRetriever

    nodes = [TextNode(text="w1 w2", id_="a"), TextNode(text="w3 w4", id_="b")]
    ColBERTRetriever.from_defaults(nodes, model=model).persist(folder)
    return folder, lambda **kw: ColBERTRetriever.from_persist_dir(folder, **kw).index


def _llamaindex_managed(model, folder: Path):
    from llama_index.core import Document, StorageContext, load_index_from_storage

    from llama_index.indices.managed.late_interaction import LateInteractionManagedIndex
    from llama_index.indices.managed.late_interaction.base import CORE_DIR

    docs = [Document(text="w1 w2", id_="a"), Document(text="w3 w4", id_="b")]
    LateInteractionManagedIndex(docs, model=model).storage_context.persist(folder)

    def reopen(**kw):
        storage = StorageContext.from_defaults(persist_dir=str(folder))
        return load_index_from_storage(storage, **kw).core_index

    return folder / CORE_DIR, reopen


ADAPTERS = {
    "langchain_retriever": _langchain_retriever,
    "langchain_vectorstore": _langchain_vectorstore,
    "llamaindex_retriever": _llamaindex_retriever,
    "llamaindex_managed": _llamaindex_managed,
}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_reopen_takes_trust_remote_model_and_verify(adapter, tmp_path, monkeypatch):
    model = _HubNamed(FakeEncoder())
    core_folder, reopen = ADAPTERS[adapter](model, tmp_path / "saved")
    fetched = []

    def from_pretrained(name=None, **kwargs):  # stands in for the download
        fetched.append(name)
        return model

    monkeypatch.setattr(ColBERT, "from_pretrained", staticmethod(from_pretrained))
    with pytest.raises(ValueError, match="names the Hugging Face Hub model 'someorg/colbert-mod"):
        reopen()
    assert fetched == []  # refused before anything was fetched
    assert len(reopen(trust_remote_model=True)) == 2
    assert fetched == ["someorg/colbert-model"]

    tokens = core_folder / "embeddings.npy"
    data = bytearray(tokens.read_bytes())
    data[-3] ^= 0x01  # a low mantissa bit of the last token: same size, still parses
    tokens.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=r"embeddings\.npy"):
        reopen(model=model)
    assert len(reopen(model=model, verify=False)) == 2
