"""Encoding internals behind :class:`late_interaction.ColBERT` (private).

``load.py`` turns a name into a ready :class:`~late_interaction._encoding.pipeline.Pipeline`:
``hub.py`` (name -> folder), ``stack.py`` (folder -> sentence-transformers ``MultiVectorEncoder``
modules, with ``checks.py`` refusing damaged folders), ``settings.py`` (argument > checkpoint >
format default), ``markers.py``, ``device.py``. ``tokenize.py`` holds the ColBERT tokenisation
rules, ``pipeline.py`` the forward pass (its backbone optionally in onnxruntime or OpenVINO:
``backends.py``, from an ONNX file ``onnx_export.py`` exports and caches), ``save.py`` writes a
PyLate-format folder, ``resolve.py`` is the one model resolution the adapters share.
"""
