"""A normal run prints only what the user asked for: no loading bars, no repeated warnings."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    from late_interaction import ColBERT, LateInteractionIndex
    from langchain_late_interaction import ColBERTReranker, ColBERTRetriever as LCRetriever
    from llama_index.core.schema import TextNode
    from llama_index.postprocessor.late_interaction_rerank import ColBERTRerank
    from llama_index.retrievers.late_interaction import ColBERTRetriever as LIRetriever

    texts = ["Lambdas create anonymous functions.", "Generators yield values lazily."]
    nodes = [TextNode(text=t) for t in texts]
    with tempfile.TemporaryDirectory() as tmp:
        model = ColBERT.from_pretrained(sys.argv[1], device="cpu")
        LCRetriever.from_texts(texts, model=model, path=Path(tmp, "lc"), k=5)
        lc = LCRetriever.load(Path(tmp, "lc"))  # rebuilds the encoder: a second model load
        ColBERTReranker(model=model).compress_documents(texts, "lazy values")
        li = LIRetriever.from_defaults(nodes=nodes, model=model, similarity_top_k=10)
        li.persist(Path(tmp, "li"))
        li = LIRetriever.from_persist_dir(Path(tmp, "li"))  # a third load
        for _ in range(3):  # top_k above the corpus size, on every call
            lc.invoke("anonymous function")
            li.retrieve("anonymous function")
        ColBERTRerank(model=model, top_n=1).postprocess_nodes(texts, query_str="lazy values")
        LateInteractionIndex.load(Path(tmp, "lc")).search("lambda", k=5)
    print("done")
    """
)


def test_loads_saves_and_searches_print_nothing(tiny_pylate_path, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_pylate_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout == "done\n"
    assert out.stderr == ""  # e.g. transformers' "Loading weights" bar on each of three loads


def test_every_format_loads_quietly(tiny_stanford_path, tiny_pylate_path, tmp_path):
    # A Stanford checkpoint's top-level linear.weight is "UNEXPECTED" to BertModel, so
    # transformers prints a load report; sentence-transformers notes legacy formats: DEBUG only.
    script = textwrap.dedent(
        """
        import sys
        from sentence_transformers import MultiVectorEncoder
        from transformers.utils import logging
        from late_interaction import ColBERT

        logging.disable_progress_bar()  # setting up the native-format folder is not the subject
        MultiVectorEncoder(sys.argv[2], device="cpu").save(sys.argv[3])
        logging.enable_progress_bar()
        for path in (sys.argv[1], sys.argv[2], sys.argv[3], None):
            ColBERT.from_pretrained(path, device="cpu").encode_documents(["a cat."])
        """
    )
    folders = [str(tiny_stanford_path), str(tiny_pylate_path), str(tmp_path / "native")]
    out = subprocess.run(
        [sys.executable, "-c", script, *folders],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (out.stdout, out.stderr) == ("", "")
