"""Writes python_reference.jsonl: prose passages from Python's own language-reference topics.

The source is ``pydoc_data.topics`` in the CPython standard library (the text behind ``help()``),
distributed under the PSF License Version 2, which allows redistribution with the notice kept
(see SOURCE.md). Each passage is one prose paragraph (grammar rules and code blocks skipped),
40-160 words, at most three per topic, so every passage fits the encoder's document length.

Usage: python cookbooks/data/make_sample_corpus.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from pydoc_data.topics import topics


def paragraphs(text: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not lines or any(line.startswith((" ", "\t")) for line in lines):
            continue  # indented: code, grammar or a table
        if len(lines) > 1 and set(lines[1].strip()) <= set("*=-"):
            continue  # a heading
        para = " ".join(line.strip() for line in lines)
        if "::=" in para or para.startswith((">>>", "Note:", "See also", "Added in", "Changed in")):
            continue
        if 40 <= len(para.split()) <= 160:
            out.append(para)
    return out


def main() -> None:
    records = []
    for name in sorted(topics):
        title = topics[name].strip().splitlines()[0].strip()
        for i, para in enumerate(paragraphs(topics[name])[:3]):
            records.append({"id": f"{name}-{i}", "title": title, "text": para, "topic": name})
    out = Path(__file__).with_name("python_reference.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    sys.stdout.write(f"wrote {len(records)} passages from {len(topics)} topics to {out}\n")


if __name__ == "__main__":
    main()
