"""Studies: one question each, run as ``python -m benchmarks.studies.<name>`` (see README.md)."""
