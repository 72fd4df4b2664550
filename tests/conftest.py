"""Shared fixtures, built once per test run (session scope).

Encoder fixtures are shared objects: treat them as read-only (build your own model, e.g. with
``ColBERT.from_pretrained(tiny_pylate_path, ...)``, if a test needs other settings).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

_TESTS = Path(__file__).resolve().parent


def _load_builders() -> ModuleType:
    # Imported by path: the test suite runs with --import-mode=importlib (no sys.path entry).
    if "_builders" in sys.modules:
        return sys.modules["_builders"]
    spec = importlib.util.spec_from_file_location("_builders", _TESTS / "_builders.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_builders"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def builders() -> ModuleType:
    """tests/_builders.py: functions that write tiny checkpoints (build_pylate, build_stanford)."""
    return _load_builders()


@pytest.fixture(scope="session")
def tiny_pylate_path(builders, tmp_path_factory) -> Path:
    """A tiny PyLate-format ColBERT (hidden 32, dim 16, "[Q] "/"[D] " markers, PyLate defaults)."""
    return builders.build_pylate(tmp_path_factory.mktemp("ckpt") / "pylate")


@pytest.fixture(scope="session")
def tiny_stanford_path(builders, tmp_path_factory) -> Path:
    """A tiny Stanford colbert-ai checkpoint (HF_ColBERT, dim 16, artifact.metadata)."""
    return builders.build_stanford(tmp_path_factory.mktemp("ckpt") / "stanford")


@pytest.fixture(scope="session")
def tiny_pylate_model(tiny_pylate_path):
    """ColBERT encoder of ``tiny_pylate_path`` on CPU (read-only)."""
    from late_interaction import ColBERT

    return ColBERT.from_pretrained(tiny_pylate_path, device="cpu")


@pytest.fixture(scope="session")
def tiny_stanford_model(tiny_stanford_path):
    """ColBERT encoder of ``tiny_stanford_path`` on CPU (read-only)."""
    from late_interaction import ColBERT

    return ColBERT.from_pretrained(tiny_stanford_path, device="cpu")


@pytest.fixture(scope="session")
def default_model():
    """The embedded all-MiniLM-L6-v2 default encoder on CPU (read-only, loaded once)."""
    from late_interaction import ColBERT

    return ColBERT.from_pretrained(device="cpu")


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu``-marked tests where torch sees no CUDA device (they are reported as skipped)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run with -m gpu on a GPU machine)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture
def no_fsync(monkeypatch):
    """Skip fsync: for tests of what a save holds, not of power-loss durability (fsync is most
    of a tiny save's time)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture(scope="session")
def st_dense():
    """``texts -> unit dense vectors`` by sentence-transformers itself on the embedded model.

    The independent reference for the dense vectors the encoder takes from its forward pass.
    """
    from sentence_transformers import SentenceTransformer

    from late_interaction._encoding.load import default_model_path

    model = SentenceTransformer(str(default_model_path()), device="cpu")
    return lambda texts: model.encode(list(texts), normalize_embeddings=True)
