"""Resolve encoder settings: explicit argument > checkpoint config > the format's default."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from math import inf
from typing import Any

from late_interaction._encoding.stack import Stack
from late_interaction.config import EncoderConfig

logger = logging.getLogger(__name__)


def _check(s: dict[str, Any], max_positions: int | None) -> None:
    for key in ("query_prefix", "document_prefix"):
        if not isinstance(s[key], str):
            msg = f"{key} must be a str ('' for no marker); got {type(s[key]).__name__}."
            raise TypeError(msg)
    for key in ("query_length", "document_length"):
        value = s[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 3:
            msg = f"{key} must be an int >= 3 (room for [CLS], marker, [SEP]); got {value!r}."
            raise ValueError(msg)
        if max_positions is not None and value > max_positions:
            msg = (
                f"{key}={value} exceeds the {max_positions} positions this model supports; "
                f"pass {key}<={max_positions}."
            )
            raise ValueError(msg)
    words = s["skiplist_words"]
    if (
        isinstance(words, str)
        or not isinstance(words, Iterable)
        or not all(isinstance(w, str) for w in words)
    ):
        msg = (
            f"skiplist_words must be a list of str (e.g. list(string.punctuation)); got {words!r}."
        )
        raise TypeError(msg)
    weight = s["dense_weight"]
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight < inf:
        msg = f"dense_weight must be a finite number >= 0 (0: MaxSim alone); got {weight!r}."
        raise ValueError(msg)
    if s["skiplist_rule"] not in ("vocab", "encode"):
        msg = f"skiplist_rule must be 'vocab' or 'encode'; got {s['skiplist_rule']!r}."
        raise ValueError(msg)


def _max_positions(backbone: Any, tokenizer: Any) -> int | None:
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000:  # transformers' "no limit" is ~1e30
        return limit
    positions = getattr(backbone.config, "max_position_embeddings", None)
    return positions if isinstance(positions, int) else None


def resolve_settings(
    arguments: dict[str, Any], checkpoint: Stack, name: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Pick each setting's value and log where it came from (DEBUG).

    Args:
        arguments: ``from_pretrained`` arguments by setting name (None = not given).
        checkpoint: The loaded stack (its stored settings and format defaults).
        name: Model name for the log lines.

    Returns:
        ``(settings, sources)``: every setting of ``EncoderConfig.SETTINGS``, validated
        (``skiplist_words`` as a tuple, ``dense_weight`` as a float), and where each came from:
        ``"argument"``, the checkpoint's settings file name, or ``"<format> default"``.

    Raises:
        ValueError: On an out-of-range length, an unknown skiplist rule, or an explicit
            ``attend_to_expansion_tokens=True`` without query expansion.
        TypeError: On a setting of the wrong type.
    """
    settings, sources = {}, {}
    for key in EncoderConfig.SETTINGS:
        if arguments.get(key) is not None:
            settings[key], sources[key] = arguments[key], "argument"
        elif key in checkpoint.settings:
            settings[key], sources[key] = checkpoint.settings[key], checkpoint.settings_source
        else:
            settings[key] = checkpoint.defaults[key]
            sources[key] = f"{checkpoint.checkpoint_format} default"
    if not settings["do_query_expansion"] and settings["attend_to_expansion_tokens"]:
        if sources["attend_to_expansion_tokens"] == "argument":
            msg = (
                "attend_to_expansion_tokens=True needs query expansion, but do_query_expansion is "
                f"False (from {sources['do_query_expansion']}): there are no expansion tokens to "
                "attend to. Pass do_query_expansion=True, or drop attend_to_expansion_tokens."
            )
            raise ValueError(msg)
        # A stored or default attention rule is moot without expansion (PyLate does the same).
        settings["attend_to_expansion_tokens"] = False
        sources["attend_to_expansion_tokens"] = "no query expansion"
    for key, value in settings.items():
        logger.debug("%s: %s=%r (from %s)", name, key, value, sources[key])
    _check(settings, _max_positions(checkpoint.backbone, checkpoint.tokenizer))
    settings["skiplist_words"] = tuple(settings["skiplist_words"])
    settings["dense_weight"] = float(settings["dense_weight"])
    return settings, sources
