"""Column-oriented feed rows across all landing days, and their rendering to file values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Union

import numpy as np

from c360.datagen.contract import ColumnSpec, FeedSpec, iso_formatter

# Sentinel for a missing date (days) or timestamp (seconds) in int64 columns.
MISSING = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Codes:
    """A categorical column: labels[codes], cheap to hold for millions of rows."""

    labels: tuple
    codes: np.ndarray

    def __post_init__(self):
        # Millions of rows of a handful of labels: one byte per row instead of eight.
        if len(self.labels) < 127 and self.codes.dtype != np.int8:
            object.__setattr__(self, "codes", np.asarray(self.codes).astype(np.int8))

    def take(self, idx: np.ndarray) -> "Codes":
        """Rows `idx` of this column."""
        return Codes(self.labels, self.codes[idx])

    def values(self) -> list:
        """Labels as a Python list."""
        return np.asarray(self.labels, dtype=object)[self.codes].tolist()


@dataclass(frozen=True)
class Ids:
    """An identifier column rendered as template % number only when written."""

    template: str
    numbers: np.ndarray

    def take(self, idx: np.ndarray) -> "Ids":
        """Rows `idx` of this column."""
        return Ids(self.template, self.numbers[idx])

    def values(self) -> list:
        """Identifiers as a Python list of strings."""
        return list(map(self.template.__mod__, self.numbers.tolist()))


Column = Union[np.ndarray, Codes, Ids]


@dataclass
class Table:
    """Rows of one feed across all landing days in file order; `day` is the landing-day index."""

    columns: dict[str, Column]
    day: np.ndarray

    def __len__(self) -> int:
        return len(self.day)

    def rows_for(self, day: int) -> np.ndarray:
        """Row positions that land on landing-day index `day`, in file order."""
        return np.flatnonzero(self.day == day)

    def take(self, idx: np.ndarray) -> dict[str, Column]:
        """Columns restricted to rows `idx`."""
        return {name: _take(col, idx) for name, col in self.columns.items()}


def _take(col: Column, idx: np.ndarray) -> Column:
    return col.take(idx) if isinstance(col, (Codes, Ids)) else col[idx]


def concat_tables(tables: list[Table]) -> Table:
    """Stack tables with the same columns, keeping their order."""
    tables = [t for t in tables if len(t)] or tables[:1]
    names = list(tables[0].columns)
    columns = {}
    for name in names:
        parts = [t.columns[name] for t in tables]
        first = parts[0]
        if isinstance(first, Codes):
            columns[name] = Codes(first.labels, np.concatenate([p.codes for p in parts]))
        elif isinstance(first, Ids):
            columns[name] = Ids(first.template, np.concatenate([p.numbers for p in parts]))
        else:
            columns[name] = np.concatenate(parts)
    return Table(columns, np.concatenate([t.day for t in tables]))


def object_array(values: list) -> np.ndarray:
    """A 1-d object array holding `values` as they are (strings, None)."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _split_format(fmt: str) -> tuple[str, str] | None:
    """Date part and time part of a strftime format, or None if their fields interleave."""
    cut = min((i for i in (fmt.find("%H"), fmt.find("%M"), fmt.find("%S")) if i >= 0), default=len(fmt))
    date_part, time_part = fmt[:cut], fmt[cut:]
    if any(f in time_part for f in ("%Y", "%m", "%d")):
        return None
    return date_part, time_part


@lru_cache(maxsize=32)
def _time_table(time_fmt: str, close: str) -> np.ndarray:
    """Rendering of every second of the day in `time_fmt`, followed by `close`."""
    second = np.arange(86400)
    two_digits = object_array([f"{i:02d}" for i in range(60)])
    fields = {"%H": two_digits[second // 3600], "%M": two_digits[second // 60 % 60],
              "%S": two_digits[second % 60]}
    out = np.full(86400, "", dtype=object)
    for part in re.split(r"(%[HMS])", time_fmt):
        out = out + (fields[part] if part in fields else part.replace("%%", "%"))
    return out + close


def _day_table(date_fmt: str, first: int, last: int, open_: str, close: str) -> np.ndarray:
    render = iso_formatter(date_fmt)
    iso = np.datetime_as_string(np.arange(first, last + 1).astype("datetime64[D]"), unit="D").tolist()
    return object_array([open_ + render(x) + close for x in iso])


def _temporal(values: np.ndarray, fmt: str, unit: str, as_json: bool) -> list:
    # Formatting each value costs microseconds; rendering each distinct day and each second of
    # the day once and gluing the two lets millions of timestamps format in a fraction of that.
    values = np.asarray(values, dtype=np.int64)
    if not len(values):
        return []
    missing = values == MISSING
    quote, null = ('"', "null") if as_json else ("", None)
    split = _split_format(fmt)
    present = values[~missing]
    if split is None or not len(present):
        render = iso_formatter(fmt)
        iso = np.datetime_as_string(values.astype(f"datetime64[{unit}]"), unit=unit).tolist()
        return [null if m else quote + render(x) + quote for x, m in zip(iso, missing.tolist())]
    date_fmt, time_fmt = split
    safe = np.where(missing, present[0], values)
    days = safe // 86400 if unit == "s" else safe
    first = int(days.min())
    table = _day_table(date_fmt, first, int(days.max()), quote, "" if time_fmt else quote)
    out = table[days - first]
    if time_fmt:
        seconds = safe % 86400 if unit == "s" else 0
        out = out + _time_table(time_fmt, quote)[seconds]
    if missing.any():
        out[missing] = null
    return out.tolist()


def _decimal(values: np.ndarray, as_json: bool) -> list:
    # Adding 0.0 turns -0.0 into 0.0 so a zero never prints as "-0.00".
    values = np.round(np.asarray(values, dtype=np.float64), 2) + 0.0
    missing = np.isnan(values)
    render = repr if as_json else "%.2f".__mod__
    out = [render(v) for v in values.tolist()]
    if missing.any():
        null = "null" if as_json else None
        for i in np.flatnonzero(missing).tolist():
            out[i] = null
    return out


def _json_strings(values: list) -> list:
    return ["null" if v is None else encode_basestring(v) for v in values]


def format_column(spec: ColumnSpec, col: Column, as_json: bool) -> list:
    """File values of one column: CSV strings (None = empty) or JSON fragments ("null", '"x"', "1.5")."""
    if isinstance(col, Codes):
        labels = list(col.labels)
        if as_json:
            labels = _json_strings(labels)
        return object_array(labels)[col.codes].tolist()
    if isinstance(col, Ids):
        return Ids('"' + col.template + '"' if as_json else col.template, col.numbers).values()
    if spec.type in ("timestamp", "date"):
        default = "%Y-%m-%dT%H:%M:%S" if spec.type == "timestamp" else "%Y-%m-%d"
        return _temporal(col, spec.fmt or default, "s" if spec.type == "timestamp" else "D", as_json)
    if spec.type == "decimal":
        return _decimal(col, as_json)
    if spec.type == "int":
        return [str(v) for v in np.asarray(col, dtype=np.int64).tolist()]
    values = col.tolist()
    return _json_strings(values) if as_json else values


def format_rows(spec: FeedSpec, columns: dict[str, Column]) -> list[tuple]:
    """Rows in the contract's column order: CSV values, or JSON-encoded fragments for JSON lines."""
    as_json = spec.file_format == "jsonl"
    rendered = [format_column(c, columns[c.name], as_json) for c in spec.columns]
    return list(zip(*rendered))
