"""CSV downloads: text that a spreadsheet would run as a formula is neutralised (OWASP CSV
injection); numbers, including negative ones, stay numbers."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from components import oee_panel, stops_list
from components.export import csv_text, neutralise_csv_cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x.example","click")', '\'=HYPERLINK("http://x.example","click")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+9)*cmd|' /C calc'!A0", "'@SUM(1+9)*cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        ("Weld fault (gun / transformer)", "Weld fault (gun / transformer)"),
        ("a=b", "a=b"),
        (" =1+1", " =1+1"),  # spreadsheets read a leading space as text
        ("", ""),
        ("-3.5", "-3.5"),  # a number written as text stays a number
        ("+12", "+12"),
        ("-1e-3", "-1e-3"),
        (-3.5, -3.5),
        (-7, -7),
        (None, None),
        (True, True),
    ],
)
def test_neutralise_csv_cell(value: object, expected: object) -> None:
    assert neutralise_csv_cell(value) == expected


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_text_neutralises_text_and_headers_only() -> None:
    frame = pd.DataFrame([{"=bad": "=1+1", "n": -5, "x": -2.5, "mixed": "@x"}, {"=bad": "ok", "n": 3, "x": 0.5,
                                                                                 "mixed": -4}])
    rows = _cells(csv_text(frame))
    assert rows == [["'=bad", "n", "x", "mixed"], ["'=1+1", "-5", "-2.5", "'@x"], ["ok", "3", "0.5", "-4"]]
    assert list(frame["=bad"]) == ["=1+1", "ok"], "the caller's frame is not changed"


STOP = {"machine": "ST10", "start": 1_764_000_000.0, "end": 1_764_000_600.0, "duration_s": 600.0, "lost_s": -12.0,
        "reason": 2, "reason_text": '=HYPERLINK("http://evil.example","click")', "category": "-cmd", "planned": False,
        "micro": False}


def test_stops_download_is_neutralised() -> None:
    header, row = _cells(stops_list.stops_csv([STOP], "Asia/Shanghai"))
    cell = dict(zip(header, row, strict=True))
    assert cell["reason_text"] == '\'=HYPERLINK("http://evil.example","click")'
    assert cell["category"] == "'-cmd"
    assert cell["lost_s"] == "-12.0", "negative numbers stay numeric"
    assert cell["start_local"] == "2025-11-25 00:00:00"


def test_shifts_download_is_neutralised() -> None:
    rows = [{"shift": "=2026-11-25 A", "availability": 0.9, "performance": 0.8, "quality": 0.99, "oee": 0.71,
             "good_count": 10, "reject_count": 0, "down_s": -1.0}]
    header, row = _cells(oee_panel.shifts_csv(rows))
    assert dict(zip(header, row, strict=True))["shift"] == "'=2026-11-25 A"
    assert row[-1] == "-1.0"
