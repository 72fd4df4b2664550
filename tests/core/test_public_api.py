"""The public surface: curated __all__, lazy torch-backed names, and import isolation."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import late_interaction

EXPECTED_ALL = [
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "ColBERT",
    "DimensionMismatchError",
    "EmptyIndexError",
    "Encoder",
    "EncoderConfig",
    "Explanation",
    "IndexConfig",
    "IndexFormatError",
    "LateInteractionError",
    "LateInteractionIndex",
    "ModelMismatchError",
    "QdrantIndex",
    "RerankResult",
    "SearchHit",
    "SearchableIndex",
    "StoredDocument",
    "TokenMatch",
    "__version__",
    "maxsim",
    "resolve_model",
]


def test_all_is_pinned():
    assert sorted(late_interaction.__all__) == sorted(EXPECTED_ALL)


def test_nothing_public_is_left_out_of_all():
    # httpx's rule: every public non-module attribute of the package is in __all__ (submodules
    # such as late_interaction.config are reachable as modules, not names to import).
    for name in late_interaction.__all__:
        getattr(late_interaction, name)  # resolve the lazy names too
    public = {
        name
        for name, value in vars(late_interaction).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - {"annotations", "importlib", "TYPE_CHECKING", "Any"} <= set(EXPECTED_ALL)
    assert set(EXPECTED_ALL) - {"__version__"} <= public


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
        "['torch', 'transformers', 'voyager', 'llama_index.core', 'langchain_core', "
        "'qdrant_client']}))"
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
        "qdrant_client": False,
    }


def test_core_names_load_no_framework():
    loaded = _modules_after(
        "from late_interaction import ColBERT, LateInteractionIndex; ColBERT; LateInteractionIndex"
    )
    assert loaded["llama_index.core"] is False
    assert loaded["langchain_core"] is False


ADAPTERS = (
    "llama_index.retrievers.late_interaction",
    "llama_index.postprocessor.late_interaction_rerank",
    "langchain_late_interaction",
    "llama_index.indices.managed.late_interaction",
)


def test_adapters_import_without_torch():
    # Importing an adapter must stay cheap: torch loads when a model is first loaded.
    loaded = _modules_after("; ".join(f"import {name}" for name in ADAPTERS))
    assert loaded["torch"] is False and loaded["transformers"] is False


_BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r} or name.startswith({blocked!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Block())
try:
    import {adapter}
except ImportError as exc:
    print(exc)
"""


def test_missing_framework_names_the_extra_to_install():
    # The requirement itself comes first: it installs wherever late-interaction came from
    # (the package is not on a package index; a clone or a wheel has no "late-interaction").
    cases = [
        ("llama_index.core", ADAPTERS[0], "llama-index", "llama-index-core"),
        ("llama_index.core", ADAPTERS[1], "llama-index", "llama-index-core"),
        ("langchain_core", ADAPTERS[2], "langchain", "langchain-core"),
        ("llama_index.core", ADAPTERS[3], "llama-index", "llama-index-core"),
    ]
    for blocked, adapter, extra, requirement in cases:
        code = _BLOCK.format(blocked=blocked, adapter=adapter)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert f'Install it with: pip install "{requirement}' in out.stdout, (adapter, out)
        assert f'pip install "late-interaction[{extra}]"' in out.stdout, (adapter, out)
        assert f'pip install ".[{extra}]" in a clone' in out.stdout, (adapter, out)


def test_core_imports_without_qdrant_client_and_qdrant_index_names_the_extra():
    # The base install has no qdrant-client: the core must import and work, and asking for
    # QdrantIndex must say what to install.
    use = "    late_interaction.maxsim\n    late_interaction.QdrantIndex\nexcept ImportError"
    code = _BLOCK.format(blocked="qdrant_client", adapter="late_interaction")
    code = code.replace("except ImportError", use)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "'qdrant_client' is required" in out.stdout, out
    assert 'pip install "late-interaction[qdrant]"' in out.stdout, out
    assert out.returncode == 0, out.stderr


def test_both_backends_satisfy_the_protocol(fake_encoder):
    from qdrant_client import QdrantClient

    from late_interaction import LateInteractionIndex, QdrantIndex, SearchableIndex

    assert isinstance(LateInteractionIndex(fake_encoder), SearchableIndex)
    assert isinstance(QdrantIndex(fake_encoder, client=QdrantClient(":memory:")), SearchableIndex)
    assert not isinstance(object(), SearchableIndex)


def test_resolve_model_kinds(tiny_pylate_path, tiny_pylate_model, fake_encoder):
    from late_interaction import ColBERT, resolve_model
    from late_interaction._encoding.resolve import same_device

    assert resolve_model(tiny_pylate_model) is tiny_pylate_model
    assert resolve_model(tiny_pylate_model, device="cpu") is tiny_pylate_model
    assert resolve_model(fake_encoder) is fake_encoder  # any Encoder, not only ColBERT
    loaded = resolve_model(str(tiny_pylate_path), device="cpu")
    assert isinstance(loaded, ColBERT) and loaded.fingerprint() == tiny_pylate_model.fingerprint()
    for bad in (123, ["a"], object()):
        try:
            resolve_model(bad)
        except TypeError as exc:
            assert "model must be None" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
    try:
        resolve_model(fake_encoder, device="cpu")  # no device of its own: device cannot apply
    except ValueError as exc:
        assert "device" in str(exc)
    else:
        raise AssertionError("device accepted for an encoder without one")
    # "cuda" is the current CUDA device (0 without CUDA), as torch reads it: equal to "cuda:0".
    assert same_device("cuda", "cuda:0") and same_device("cpu", "cpu")
    assert not same_device("cuda:1", "cuda") and not same_device("cpu", "cuda:0")
