"""Studies: one-off measurements behind design choices (see each module docstring)."""
