"""Execute the cookbook notebooks and store their outputs, or check the stored ones are fresh.

The notebooks are committed with their outputs, so a reader on a code host sees results. This
script is the one way those outputs are made (``python cookbooks/run_notebooks.py``) and checked
(``--check``, what the test suite runs): a notebook whose code or the library changed so that an
output differs from the stored one fails, with the cells that differ.

Outputs are stored without what changes from run to run (execution times, counts) and numbers
are compared with a tolerance (``--atol``), since the last digits of a float can differ between
CPUs; every word, id and ranking must be the same. A cell that writes to stderr fails either
way: a normal run prints only what the notebook asked for.

Usage: python cookbooks/run_notebooks.py [--check] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(HERE.glob("*.ipynb"))
NUMBER = re.compile(r"-?\d+\.\d+")


def execute(path: Path, timeout: int = 600) -> Any:
    """Run every cell of ``path`` in a fresh kernel (cwd: cookbooks/); return the notebook."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": HERE}}
    )
    client.execute()
    return clean(notebook)


def clean(notebook: Any) -> Any:
    """Drop run-to-run noise: timings, kernel versions, execution counts numbered in order."""
    notebook = copy.deepcopy(notebook)
    notebook.metadata.pop("widgets", None)
    notebook.metadata["language_info"] = {"name": "python"}
    count = 0
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            cell.outputs = coalesce(cell.get("outputs", []))
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = count
    return notebook


def coalesce(outputs: list[Any]) -> list[Any]:
    """Merge consecutive stream outputs of one name: how prints arrive in chunks is timing."""
    merged: list[Any] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and output["output_type"] == last["output_type"] == "stream"
            and output["name"] == last["name"]
        ):
            last["text"] += output["text"]
        else:
            merged.append(copy.deepcopy(output))
    return merged


def texts(cell: Any) -> list[str]:
    """A code cell's outputs as text: streams (name-tagged), plain-text results, errors."""
    out = []
    for output in coalesce(cell.get("outputs", [])):
        if output["output_type"] == "stream":
            out.append(f"[{output['name']}] {output['text']}")
        elif output["output_type"] == "error":
            out.append(f"[error] {output['ename']}: {output['evalue']}")
        else:
            out.append(output.get("data", {}).get("text/plain", ""))
    return out


def same(a: str, b: str, atol: float) -> bool:
    """Whether two outputs are equal, numbers within ``atol`` and everything else exactly."""
    if NUMBER.sub("#", a) != NUMBER.sub("#", b):
        return False
    pairs = zip(NUMBER.findall(a), NUMBER.findall(b), strict=True)
    return all(abs(float(x) - float(y)) <= atol for x, y in pairs)


def noise(notebook: Any) -> list[str]:
    """Cells that wrote to stderr (a warning, a progress bar) or failed."""
    code = [c for c in notebook.cells if c.cell_type == "code"]
    return [
        f"cell {i} wrote to stderr or failed:\n{''.join(texts(c))}"
        for i, c in enumerate(code, start=1)
        if any(t.startswith(("[stderr]", "[error]")) for t in texts(c))
    ]


def stale(stored: Any, fresh: Any, atol: float) -> list[str]:
    """Where a fresh run's outputs differ from the stored ones (``[]``: the stored are fresh)."""
    old = [c for c in stored.cells if c.cell_type == "code"]
    new = [c for c in fresh.cells if c.cell_type == "code"]
    if [c.source for c in old] != [c.source for c in new]:
        return ["the code cells differ from the stored notebook's"]
    return [
        f"cell {i} output changed:\n--- stored\n{''.join(texts(a))}\n--- now\n{''.join(texts(b))}"
        for i, (a, b) in enumerate(zip(old, new, strict=True), start=1)
        if len(texts(a)) != len(texts(b))
        or not all(same(x, y, atol) for x, y in zip(texts(a), texts(b), strict=True))
    ]


def main() -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--atol", type=float, default=0.02, help="tolerance on printed numbers")
    args = parser.parse_args()
    failed = False
    for path in args.notebooks:
        fresh = execute(path)
        issues = noise(fresh)
        if args.check:
            issues += stale(nbformat.read(path, as_version=4), fresh, args.atol)
        else:
            nbformat.write(fresh, path)
        print(f"{path.name}: {'problems' if issues else 'ok'}", *issues, sep="\n")
        failed |= bool(issues)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
