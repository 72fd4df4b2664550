"""The public surface: curated __all__, lazy torch-backed names, and import isolation."""

from __future__ import annotations

import json
import subprocess
import sys

import late_interaction

EXPECTED_ALL = [
    "CheckpointFormatError",
    "ColBERT",
    "DimensionMismatchError",
    "EmptyIndexError",
    "IndexFormatError",
    "LateInteractionError",
    "LateInteractionIndex",
    "ModelMismatchError",
    "RerankResult",
    "SearchHit",
    "StoredDocument",
    "__version__",
    "maxsim",
]


def test_all_is_pinned():
    assert sorted(late_interaction.__all__) == sorted(EXPECTED_ALL)


def test_every_name_in_all_resolves():
    for name in late_interaction.__all__:
        assert getattr(late_interaction, name) is not None, name


def test_unknown_attribute_raises_attribute_error():
    try:
        late_interaction.DoesNotExist  # noqa: B018
    except AttributeError as exc:
        assert "DoesNotExist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def _modules_after(code: str) -> dict[str, bool]:
    probe = (
        f"{code}\nimport sys, json\n"
        "print(json.dumps({m: m in sys.modules for m in "
        "['torch', 'transformers', 'voyager', 'llama_index.core', 'langchain_core']}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_core_loads_no_heavy_or_framework_module():
    loaded = _modules_after("import late_interaction; late_interaction.maxsim")
    assert loaded == {
        "torch": False,
        "transformers": False,
        "voyager": False,
        "llama_index.core": False,
        "langchain_core": False,
    }


def test_core_names_load_no_framework():
    loaded = _modules_after(
        "from late_interaction import ColBERT, LateInteractionIndex; ColBERT; LateInteractionIndex"
    )
    assert loaded["llama_index.core"] is False
    assert loaded["langchain_core"] is False
