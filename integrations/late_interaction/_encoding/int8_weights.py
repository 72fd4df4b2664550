"""int8 weights for OpenVINO: every matrix product's constant weights stored as int8.

``backend="openvino", quantize="int8"`` runs this file. Each ``MatMul`` whose weight is a
constant 2-D matrix gets int8 weights with one float32 scale per output column (symmetric:
``scale = max |w| / 127``, zero point 0) behind a standard ONNX ``DequantizeLinear``. OpenVINO's
CPU plugin reads that pattern as compressed weights and, on CPUs with int8 dot products (VNNI),
quantises each token's activations at run time in groups of ``GROUP_SIZE`` input channels, so the
products run in int8 while the layer norms, softmax and GELU stay float32.

Why not onnxruntime's ``quantize_dynamic`` (the ``"onnx"`` backend's int8): it quantises a whole
batch's activations with one scale, and on the benchmark checkpoint that moved single token
vectors to cosine 0.90 of float32 and cost 0.012 nDCG@10 on SciFact; per-token groups keep
tokens at >= 0.99. Why not NNCF's ``compress_weights``, which does the same rounding: it would
add networkx, ninja, pydot, scikit-learn and scipy (with upper pins on networkx and numpy) to the
``[openvino]`` extra for these few lines. onnxruntime's quantisers write QDQ pairs on the
activations too (static, calibrated per tensor: cosine 0.37-0.68 here) or
``MatMulNBits``, which OpenVINO does not read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Input channels per activation scale in OpenVINO's dynamic quantisation (set explicitly, so a
#: new OpenVINO release cannot change the numbers silently). Backbone CPU time per SciFact document
#: on 2 cores against 37.4 ms for OpenVINO float32, and token cosine min / mean to float32 torch
#: (``benchmarks/results/backends-scifact128-20261130-1115-backbone.md``): 32 (OpenVINO's
#: default) 27.3 ms, 0.9957 / 0.9992; 64: 23.8 ms, 0.9941 / 0.9990; 128: 21.3 ms, 0.9940 /
#: 0.9987; 192: 22.2 ms, 0.9910 / 0.9984; 384: 23.6 ms, 0.9891 / 0.9978.
GROUP_SIZE = 128


def quantize_weights(source: Path, path: Path) -> None:
    """Write ``source`` (an ONNX file) to ``path`` with int8 weights on its constant MatMuls.

    Raises:
        ValueError: If the graph has no constant matrix product to quantise.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    # A weight read by anything but a MatMul's second input stays float32 (it is not replaced).
    other_uses = {
        name
        for node in graph.node
        for i, name in enumerate(node.input)
        if not (node.op_type == "MatMul" and i == 1)
    }
    done: dict[str, str] = {}  # weight name -> dequantised name (a shared weight is done once)
    nodes = []
    for node in graph.node:
        name = node.input[1] if node.op_type == "MatMul" and len(node.input) == 2 else None
        tensor = initializers.get(name) if name is not None else None
        if tensor is not None and name not in done.keys() | other_uses and len(tensor.dims) == 2:
            weights = numpy_helper.to_array(tensor)
            if weights.dtype == np.float32:
                scale = np.abs(weights).max(axis=0) / 127.0
                scale[scale == 0] = 1.0  # an all-zero column: any scale gives zeros
                q = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)
                graph.initializer.remove(tensor)
                graph.initializer.extend([
                    numpy_helper.from_array(q, f"{name}_int8"),
                    numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
                    numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_zero"),
                ])  # fmt: skip
                done[name] = f"{name}_dequantized"
                inputs = [f"{name}_int8", f"{name}_scale", f"{name}_zero"]
                nodes.append(helper.make_node("DequantizeLinear", inputs, [done[name]], axis=1))
        if name in done:
            node.input[1] = done[name]
        nodes.append(node)
    if not done:
        msg = f"{source} has no matrix product with constant weights to quantise."
        raise ValueError(msg)
    graph.ClearField("node")
    graph.node.extend(nodes)
    onnx.save(model, str(path))
