"""sentence-transformers 6's own late-interaction format equals its own encode_query/_document.

The reference is ``MultiVectorEncoder`` itself: a folder written by ``MultiVectorEncoder.save``
(``Transformer``, ``Dense``, ``MultiVectorMask``, ``Normalize`` modules, ``model_type:
"MultiVectorEncoder"``) is encoded by it and by our ``ColBERT``, row for row.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from late_interaction import CheckpointFormatError, ColBERT

QUERIES = ["What is the capital of France?", "cats!", "", "the river, the sea; the sky " * 6]
DOCS = ["Paris is the capital of France.", "The cat sat, on the mat!!!", "", "a, b; (c) " * 9]


@pytest.fixture(scope="module")
def native(builders, tmp_path_factory):
    from sentence_transformers import MultiVectorEncoder

    st_config = {
        "query_prefix": "[Q] ",
        "document_prefix": "[D] ",
        "query_length": 12,
        "document_length": 20,
        "attend_to_expansion_tokens": True,
        "do_query_expansion": True,
        "skiplist_words": ["!", ",", ";"],
    }
    root = tmp_path_factory.mktemp("native")
    source = builders.build_pylate(root / "pylate", seed=4, st_config=st_config)
    folder = root / "native"
    MultiVectorEncoder(str(source), device="cpu", local_files_only=True).save(str(folder))
    assert json.loads((folder / "config_sentence_transformers.json").read_text())["model_type"] == (
        "MultiVectorEncoder"
    )
    return folder


def test_native_format_equals_multi_vector_encoder(native):
    from sentence_transformers import MultiVectorEncoder

    reference = MultiVectorEncoder(str(native), device="cpu", local_files_only=True)
    model = ColBERT.from_pretrained(native, device="cpu")
    assert model.config.checkpoint_format == "multi-vector-encoder"
    assert (model.config.query_length, model.config.document_length) == (12, 20)
    assert model.config.attend_to_expansion_tokens and model.config.skiplist_words == (
        "!",
        ",",
        ";",
    )
    pairs = (
        (model.encode_queries(QUERIES, batch_size=3), reference.encode_query(QUERIES)),
        (model.encode_documents(DOCS, batch_size=3), reference.encode_document(DOCS)),
    )
    for ours, theirs in pairs:
        for a, b in zip(ours, theirs, strict=True):
            b = b.cpu().numpy()
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_explicit_arguments_override_the_native_config(native, caplog):
    caplog.set_level(logging.DEBUG, logger="late_interaction")
    model = ColBERT.from_pretrained(native, device="cpu", query_length=8, skiplist_words=[])
    assert (model.config.query_length, model.config.document_length) == (8, 20)
    assert model.encode_queries("cats")[0].shape[0] == 8
    assert model.encode_documents("a, b!")[0].shape[0] == 7  # [CLS] [D] a , b ! [SEP]
    assert "query_length=8 (from argument)" in caplog.text
    assert "document_length=20 (from config_sentence_transformers.json)" in caplog.text


def test_unsupported_native_expansion_is_refused(native, tmp_path):
    import shutil

    folder = shutil.copytree(native, tmp_path / "min")
    config = json.loads((folder / "sentence_bert_config.json").read_text())
    config["query_expansion"]["strategy"] = "min"
    (folder / "sentence_bert_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError, match="strategy 'fixed'"):
        ColBERT.from_pretrained(folder, device="cpu")
