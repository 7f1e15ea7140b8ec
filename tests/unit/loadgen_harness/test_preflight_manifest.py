"""The advertised context read from a manifest as the SUT stated it: numbers and numeric strings only."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from loadgen_harness._preflight import advertised_context


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4096, 4096),
        ("131072", 131072),
        (2048.0, 2048),
        (0, None),
        ("lots", None),
        (True, None),
        (None, None),
        ([1], None),
    ],
)
def test_advertised_context(value: JsonValue, expected: int | None) -> None:
    assert advertised_context({"max_context_tokens": value}) == expected
    assert advertised_context({}) is None


def test_manifest_count_is_the_one_reader_of_whole_number_fields() -> None:
    from loadgen_harness._preflight import manifest_count

    assert manifest_count({"max_batch": 16}, "max_batch") == 16
    assert manifest_count({"max_batch": "8"}, "max_batch") == 8
    assert manifest_count({"max_batch": {"n": 8}}, "max_batch") is None
    assert manifest_count({"max_batch": -1}, "max_batch") is None
