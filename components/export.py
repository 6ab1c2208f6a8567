"""Safe CSV downloads: every file a user downloads goes through ``csv_text``.

A downtime reason text such as ``=HYPERLINK("http://...","click")`` comes from a PLC or an
operator; written as is, a spreadsheet opens it as a live formula (OWASP "CSV
injection"). Text cells that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return get a leading single quote, which spreadsheets show as text. Numbers stay numbers:
a negative duration or energy figure is data, not a formula.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from dash import dcc

from components.i18n import _, current

BOM = "\ufeff"  # Excel reads a CSV as UTF-8 (Chinese headers and reason texts) only after one

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def neutralise_csv_cell(value: Any) -> Any:
    """``value`` as a spreadsheet will read it as data. Non-text values (numbers, booleans,
    None) and text that is just a number (``-3.5``) are returned unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def csv_text(frame: pd.DataFrame) -> str:
    """``frame.to_csv(index=False)`` with every text cell neutralised (headers too)."""
    safe = frame.rename(columns=lambda c: neutralise_csv_cell(str(c)))
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_csv_cell)
    return safe.to_csv(index=False)


def headers(columns: dict[str, str]) -> dict[str, str]:
    """Column key -> header in the page's language. English keeps the keys (``down_s``), which
    scripts reading the files already use; other languages get the translated ``columns`` labels."""
    if current() == "en":
        return {key: key for key in columns}
    return {key: _(label) for key, label in columns.items()}


def send_csv(text: str, filename: str) -> dict[str, Any]:
    """A download of ``text`` (from ``csv_text``) with a UTF-8 byte order mark."""
    download: dict[str, Any] = dcc.send_string(BOM + text, filename, type="text/csv")
    return download
