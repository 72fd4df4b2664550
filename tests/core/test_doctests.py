"""Runs the doctests of the pure numeric modules (hand-computed toy arrays)."""

from __future__ import annotations

import doctest

import pytest

import late_interaction
import late_interaction._index.pooling
import late_interaction.scoring


@pytest.mark.parametrize(
    "module", [late_interaction, late_interaction.scoring, late_interaction._index.pooling]
)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
