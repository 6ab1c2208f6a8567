"""Key names and stream ids are made and parsed only by ``domain.contract``: each parse
undoes its make."""

from __future__ import annotations

import pytest

from domain import contract
from domain.model import Signal


@pytest.mark.parametrize("line", ["BW1", "CM-2", "line:with:colons", "大线"])
def test_the_line_of_an_events_key(line: str) -> None:
    assert contract.line_of_events_key(contract.events_key(line)) == line
    assert contract.line_of_events_key(contract.events_key(line).encode()) == line


@pytest.mark.parametrize("key", ["plant:{BW1}:live", "other:{BW1}:events", "BW1"])
def test_a_key_that_is_not_a_line_stream_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not a line stream"):
        contract.line_of_events_key(key)


@pytest.mark.parametrize(("entry_id", "expected"), [
    ("1700000000123-0", (1700000000123, 0)),
    (b"1700000000123-17", (1700000000123, 17)),
    ("42", (42, 0)),
    (contract.NO_STREAM_ID, (0, 0)),
])
def test_stream_ids_parse_to_comparable_pairs(entry_id: str | bytes, expected: tuple[int, int]) -> None:
    assert contract.stream_id_tuple(entry_id) == expected


def test_stream_ids_round_trip_and_order() -> None:
    ids = [contract.stream_id(ms, seq) for ms, seq in [(9, 0), (10, 0), (10, 1), (10, 10), (100, 0)]]
    assert [contract.stream_id_tuple(i) for i in ids] == [(9, 0), (10, 0), (10, 1), (10, 10), (100, 0)]
    assert sorted(ids, key=contract.stream_id_tuple) == ids  # "10-10" after "10-1", unlike text order
    assert contract.after_stream_id(b"10-1") == "(10-1"


def test_node_fields_of_machines_and_of_endpoints() -> None:
    field = contract.live_field("ST10", Signal.STATE)
    assert contract.split_live_field(field) == ("ST10", "state")
    assert contract.endpoint_of_field(field) is None
    assert contract.endpoint_of_field(contract.endpoint_field("plc-7")) == "plc-7"
    with pytest.raises(ValueError):
        contract.split_live_field("no-bar")
