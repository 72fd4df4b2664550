"""Benchmarks: the side-by-side comparison (``python -m benchmarks.compare``) and its helpers.

See ``benchmarks/README.md``. Modules with a leading underscore are helpers, not entry points.
"""
