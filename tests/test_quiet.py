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
