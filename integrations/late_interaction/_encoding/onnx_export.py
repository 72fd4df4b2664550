"""The backbone as an ONNX file, exported from the loaded weights and cached on disk.

Why ours: sentence-transformers' ``backend="onnx"``/``"openvino"`` goes through optimum-onnx and
optimum-intel, whose releases pin transformers below the 5.x we run (optimum-onnx 0.1.0:
``transformers<4.58``; optimum-intel 2.2.0: ``transformers<5.6``). Exporting only the Hugging Face
backbone (ids and mask in, last hidden states out) with ``torch.onnx.export`` keeps everything
after it (projections, normalisation, the rows we keep, dense vectors) in the torch code every
checkpoint format already shares, so each format gets the backends for free.

Files (``variant``):

* ``"base"``: the traced graph in standard ONNX operators (what OpenVINO reads);
* ``"ort"``: the base graph with onnxruntime's transformer fusions (attention, skip layer norm,
  bias GELU; ``onnxruntime.transformers.optimizer``), for onnxruntime;
* ``"ort-int8"``: the fused graph with int8 weights (``quantize_dynamic``, per channel);
* ``"ov-int8"``: the base graph with int8 weights behind standard ``DequantizeLinear`` operators
  (``int8_weights.py``), for OpenVINO, which quantises the activations itself at run time.

Each is named by a key over the backbone's weights as loaded (so markers added at load count),
the export settings and the library versions; a sidecar JSON records its SHA-256, checked on every
load, so a stale or damaged file is exported again rather than trusted. Files are written to a
temporary name and renamed, under a file lock, so no reader ever sees half a file. Nothing is
fetched from a network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: Bump when the export recipe changes: old files then get a new key and are exported again.
EXPORT_VERSION = 1
_OPSET = 17
VARIANTS = ("base", "ort", "ort-int8", "ov-int8")
_CHUNK = 1 << 24


def cache_root() -> Path:
    """Folder for exports that cannot go beside the model.

    ``$LATE_INTERACTION_CACHE``, else ``$XDG_CACHE_HOME/late-interaction`` (by default
    ``~/.cache/late-interaction``).
    """
    explicit = os.environ.get("LATE_INTERACTION_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "late-interaction"


def export_folder(model_folder: Path, *, local: bool) -> Path:
    """Where the exports of ``model_folder`` go.

    ``$LATE_INTERACTION_CACHE`` if set (an explicit choice wins); else ``<model_folder>/onnx`` for
    a local folder we may write to; else (a Hub cache snapshot, the embedded default model inside
    site-packages, a read-only folder) ``cache_root()/onnx``. The file names carry the weights'
    key, so one shared cache folder serves every model.
    """
    if not os.environ.get("LATE_INTERACTION_CACHE") and local and os.access(model_folder, os.W_OK):
        return model_folder / "onnx"
    return cache_root() / "onnx"


def _versions() -> dict[str, str]:
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    with contextlib.suppress(ImportError):
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__  # fused operators are its own
    return out


def weights_key(backbone: Any, variant: str) -> str:
    """Hex key of the backbone's weights (names, dtypes, shapes, bytes) and the export recipe."""
    digest = hashlib.sha256()
    recipe = {"export": EXPORT_VERSION, "opset": _OPSET, "variant": variant, **_versions()}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    for name, tensor in sorted(backbone.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(folder: Path, name: str, produce: Any) -> Path:
    """``produce(tmp_path)`` writes the file; it lands as ``folder/name`` only when complete."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        produce(tmp_path)
        with tmp_path.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, folder / name)
    finally:
        tmp_path.unlink(missing_ok=True)
    return folder / name


class _Backbone(torch.nn.Module):
    """Positional inputs -> last hidden states (what ``torch.onnx.export`` traces)."""

    def __init__(self, backbone: Any, names: list[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.names = names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        kwargs = dict(zip(self.names, inputs, strict=True))
        return self.backbone(**kwargs, return_dict=True).last_hidden_state


def _export_base(backbone: Any, probe: dict[str, torch.Tensor], path: Path) -> None:
    names = list(probe)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    before = backbone.config._attn_implementation
    # Eager attention traces to the MatMul/Softmax pattern onnxruntime fuses into one Attention
    # operator (the SDPA graph is left unfused); the numbers are the same.
    backbone.set_attn_implementation("eager")
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The TorchScript exporter (dynamo=False): one self-contained file, seconds instead of
            # tens, and no onnxscript dependency. Its tracer warns about shape-dependent Python
            # branches in transformers' mask code; none depends on batch or sequence length.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Backbone(backbone, names).eval(),
                tuple(probe[name] for name in names),
                str(path),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=_OPSET,
                dynamo=False,
            )
    finally:
        backbone.set_attn_implementation(before)


def _fuse(source: Path, backbone: Any, path: Path) -> None:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    # Embedding fusion assumes BERT's position ids (RoBERTa-style models offset them); it is a
    # small share of the time, so it is left out rather than checked per architecture.
    options.enable_embed_layer_norm = False
    config = backbone.config
    model = optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        optimization_options=options,
        opt_level=0,  # our fusions only; the session applies onnxruntime's own at load
        use_gpu=False,
    )
    logger.debug("onnxruntime fusions: %s", model.get_fused_operator_statistics())
    model.save_model_to_file(str(path))


def _not_from_quantizer(record: logging.LogRecord) -> bool:
    # quantize_dynamic logs on the root logger: advice about static quantisation (calibration,
    # not the dynamic kind used here) and a line per tensor at INFO. Kept out of the user's logs.
    return f"onnxruntime{os.sep}quantization" not in record.pathname


def _quantize(source: Path, path: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    root.addFilter(_not_from_quantizer)
    try:
        quantize_dynamic(
            str(source),
            str(path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # Shape inference cannot type the fused operators' outputs; they are float32.
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(_not_from_quantizer)


def _valid(path: Path, sidecar: Path, key: str) -> bool:
    if not (path.is_file() and sidecar.is_file()):
        return False
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("key") != key:
        return False
    return meta.get("bytes") == path.stat().st_size and meta.get("sha256") == _sha256(path)


def onnx_file(
    backbone: Any,
    probe: dict[str, torch.Tensor],
    folder: Path,
    variant: str,
    check: Any,
) -> Path:
    """The cached ONNX file of ``variant``, exported (with what it derives from) if needed.

    Args:
        backbone: The Hugging Face model (float32, CPU).
        probe: A tokenised batch (input names and example tensors) to trace with.
        folder: Where the files live (``export_folder``); created if missing.
        variant: One of ``VARIANTS``.
        check: ``check(path, variant)`` runs a new file against the torch backbone and raises if
            it disagrees; it only runs on a file that is not cached yet.

    Returns:
        The path of a complete file whose bytes match its recorded SHA-256.
    """
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    key = weights_key(backbone, variant)
    stem = f"backbone-{variant}-{key[:20]}"
    path, sidecar = folder / f"{stem}.onnx", folder / f"{stem}.json"
    with FileLock(str(folder / f".{stem}.lock")):
        if _valid(path, sidecar, key):
            logger.debug("using the cached export %s", path)
            return path
        if path.exists() or sidecar.exists():
            logger.warning("%s does not match its recorded checksum; exporting it again.", path)
        sidecar.unlink(missing_ok=True)
        if variant == "base":
            _write_atomically(folder, path.name, lambda tmp: _export_base(backbone, probe, tmp))
        else:
            # "ort" and "ov-int8" derive from "base", "ort-int8" from "ort" (each cached too).
            parent = "ort" if variant == "ort-int8" else "base"
            source = onnx_file(backbone, probe, folder, parent, check)
            if variant == "ort":
                _write_atomically(folder, path.name, lambda tmp: _fuse(source, backbone, tmp))
            elif variant == "ort-int8":
                _write_atomically(folder, path.name, lambda tmp: _quantize(source, tmp))
            else:
                from late_interaction._encoding.int8_weights import quantize_weights

                _write_atomically(folder, path.name, lambda tmp: quantize_weights(source, tmp))
        try:
            check(path, variant)
        except Exception:
            path.unlink(missing_ok=True)  # never leave a file that failed its check
            raise
        meta = {"key": key, "variant": variant, "bytes": path.stat().st_size,
                "sha256": _sha256(path), "versions": _versions()}  # fmt: skip
        _write_atomically(folder, sidecar.name, lambda tmp: tmp.write_text(json.dumps(meta)))
        logger.info("exported %s backbone to %s", variant, path)
    return path
