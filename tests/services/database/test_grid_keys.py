"""How the grid tells rows apart when a page is read in several ranges (``_hashable``): by
the key's values, whatever their type, NaN included (it equals nothing, itself included)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from simpleaided.services.database.grid import _hashable


@pytest.mark.parametrize(
    "make",
    [
        lambda: float("nan"),
        lambda: Decimal("NaN"),
        lambda: [1, 2, [3]],
        lambda: {"a": [1]},
        lambda: b"\x00key",
        lambda: Decimal("10.00"),
        lambda: 2**70,
        lambda: "clé",
    ],
)
def test_a_value_read_twice_has_one_identity(make: Any) -> None:
    # Two reads give two objects: the identity must not depend on which.
    assert _hashable(make()) == _hashable(make())
    assert len({_hashable(make()), _hashable(make())}) == 1


def test_different_values_have_different_identities() -> None:
    values = [float("nan"), 1.5, Decimal("2.5"), [1], [2], {"a": 1}, {"a": 2}, b"a", "a", 7]
    assert len({_hashable(v) for v in values}) == len(values)
