"""Write one landing file per feed and landing date, injecting bad rows with exactly one defect each."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path

import numpy as np

from c360.datagen.contract import FeedSpec, malformed_temporal

REASONS = ("truncated_record", "malformed_date", "malformed_number", "negative_amount",
           "unknown_currency", "missing_required", "duplicate_key")
# ISO 4217 "no currency" (XXX), a pence code some feeds use (GBX) and no code at all (ZZZ).
UNKNOWN_CURRENCIES = ("XXX", "GBX", "ZZZ")
MALFORMED_NUMBERS = ("N/A", "12..50", "1O0.00", "twelve", "12.50 GBP")
# Once a file reaches this many rows it carries every defect its feed is eligible for, so a
# small generated bank still exercises every quarantine rule.
FLOOR_ROWS = 200
_FALLBACK_WHEN = dt.datetime(2020, 1, 1, 12, 0, 0)
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class BadRow:
    """Ground truth for one deliberately bad record in a landing file."""

    system: str
    feed: str
    file: str
    record_no: int
    key: str
    reason: str
    field: str


@dataclass(frozen=True)
class _Raw:
    """A record written as literal text (a truncated line)."""

    text: str


class _Eligibility:
    """Which defects a feed can carry, and in which columns (positions in file order)."""

    def __init__(self, spec: FeedSpec):
        keyset = set(spec.key)
        cols = list(enumerate(spec.columns))
        self.key_idx = [spec.names.index(k) for k in spec.key]
        self.dates = [i for i, c in cols if c.type in ("date", "timestamp")]
        self.numbers = [i for i, c in cols if c.type in ("decimal", "int") and c.name not in keyset]
        self.mins = [i for i, c in cols if c.min is not None and c.name not in keyset]
        self.currencies = [i for i, c in cols if c.domain == "currency" and c.name not in keyset]
        self.required = [i for i, c in cols if c.required and c.name not in keyset]
        # A CSV record cut after the k-th delimiter keeps k+1 fields, which must be fewer than
        # the header has, or the cut would be indistinguishable from an empty last column.
        self.cut_after = min(3, len(spec.columns) - 2)
        self.key_survives_cut = all(k < self.cut_after for k in self.key_idx)
        kinds = ["truncated_record"]
        for kind, cols_for in (("malformed_date", self.dates), ("malformed_number", self.numbers),
                               ("negative_amount", self.mins), ("unknown_currency", self.currencies),
                               ("missing_required", self.required), ("duplicate_key", self.key_idx)):
            if cols_for:
                kinds.append(kind)
        self.kinds = tuple(kinds)


class FeedWriter:
    """Streams rows of one feed file to disk, corrupting a few and recording each in ground truth.

    Rows arrive as `format_rows` renders them: CSV values, or JSON fragments for JSON lines.
    """

    def __init__(self, spec: FeedSpec, root: Path, landing_date: dt.date,
                 rng: np.random.Generator, bad_rate: float):
        self.spec, self.rng, self.bad_rate = spec, rng, bad_rate
        self.relpath = spec.relpath(landing_date)
        self.landing_date = landing_date
        self.elig = _Eligibility(spec)
        self.records = 0
        self.bad: list[BadRow] = []
        self._json = spec.file_format == "jsonl"
        self._seen = 0
        self._kinds_seen: set[str] = set()
        self._bad_keys: set[tuple] = set()
        keys = [encode_basestring(h).replace("%", "%%") for h in spec.headers]
        self._line = "{" + ",".join(k + ":%s" for k in keys) + "}"
        path = root / self.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "w", encoding="utf-8", newline="")
        if spec.bom:
            self._fh.write("\ufeff")
        if not self._json:
            self._csv = csv.writer(self._fh, delimiter=spec.delimiter, lineterminator="\n")
            self._csv.writerow([h + spec.header_suffix for h in spec.headers])

    def write(self, rows: list[tuple]) -> None:
        """Append rows in column order, injecting this chunk's bad rows."""
        if not rows:
            return
        rows = list(rows)
        inserts, bad_at = {}, {}
        for pos, kind in sorted(self._plan(len(rows)).items()):
            for candidate in self._rotation(kind):
                if self._apply(rows, pos, candidate, inserts, bad_at):
                    self._kinds_seen.add(candidate)
                    break
        items, marks = _merge(rows, inserts, bad_at)
        for index, (key, reason, field) in marks:
            self.bad.append(BadRow(self.spec.system, self.spec.feed, self.relpath,
                                   self.records + index + 1, key, reason, field))
        self._emit(items, [i for i, (_, reason, _) in marks if reason == "truncated_record"])
        self.records += len(items)

    def close(self) -> dict:
        """Close the file and return its manifest entry."""
        self._fh.close()
        return {"system": self.spec.system, "feed": self.spec.feed,
                "landing_date": self.landing_date.isoformat(), "path": self.relpath,
                "records": self.records, "bad": len(self.bad)}

    def _decode(self, row: tuple) -> list:
        return [json.loads(v) for v in row] if self._json else list(row)

    def _encode(self, values: list) -> tuple:
        return tuple(_ENCODE(v) for v in values) if self._json else tuple(values)

    def _plan(self, n: int) -> dict[int, str]:
        if self.bad_rate <= 0:
            self._seen += n
            return {}
        count = min(int(self.rng.binomial(n, self.bad_rate)), n)
        positions = self.rng.choice(n, size=count, replace=False).tolist()
        kinds = self.rng.integers(0, len(self.elig.kinds), size=count).tolist()
        plan = {p: self.elig.kinds[k] for p, k in zip(positions, kinds)}
        if self._seen < FLOOR_ROWS <= self._seen + n:
            wanted = [k for k in self.elig.kinds if k not in self._kinds_seen and k not in plan.values()]
            free = (p for p in self.rng.permutation(n).tolist() if p not in plan and p > 0)
            for kind, pos in zip(wanted, free):
                plan[pos] = kind
        self._seen += n
        return plan

    def _rotation(self, kind: str) -> list[str]:
        kinds = list(self.elig.kinds)
        start = kinds.index(kind)
        return kinds[start:] + kinds[:start]

    def _apply(self, rows: list, pos: int, kind: str, inserts: dict, bad_at: dict) -> bool:
        if kind == "duplicate_key":
            return self._duplicate(rows, pos, inserts, bad_at)
        values = self._decode(rows[pos])
        if kind == "truncated_record":
            text = self._truncate(rows[pos], values)
            if text is None:
                return False
            # Truth reports the key only when the kept text still shows it (JSON cuts keep it).
            visible = self._json or self.elig.key_survives_cut
            bad_at[pos] = (self._key_text(values) if visible else "", kind, "")
            rows[pos] = _Raw(text)
            return True
        field = self._corrupt(values, kind)
        if field is None:
            return False
        rows[pos] = self._encode(values)
        bad_at[pos] = (self._key_text(values), kind, field)
        return True

    def _corrupt(self, row: list, kind: str) -> str | None:
        elig, rng = self.elig, self.rng
        if kind == "malformed_date":
            return self._malform_date(row)
        if kind == "missing_required":
            i = elig.required[int(rng.integers(len(elig.required)))]
            row[i] = None
        elif kind in ("negative_amount", "malformed_number"):
            # Only a number the row carries is garbled; an open complaint keeps its null amount.
            filled = [i for i in (elig.mins if kind == "negative_amount" else elig.numbers)
                      if row[i] is not None]
            if not filled:
                return None
            i = filled[int(rng.integers(len(filled)))]
            if kind == "malformed_number":
                row[i] = MALFORMED_NUMBERS[int(rng.integers(len(MALFORMED_NUMBERS)))]
            else:
                amount = self.spec.columns[i].min - max(abs(_as_float(row[i], 10.0)), 1.0)
                row[i] = round(amount, 2) if self._json else "%.2f" % amount
        elif kind == "unknown_currency":
            i = elig.currencies[int(rng.integers(len(elig.currencies)))]
            row[i] = UNKNOWN_CURRENCIES[int(rng.integers(len(UNKNOWN_CURRENCIES)))]
        else:
            raise ValueError(f"unknown defect {kind}")
        return self.spec.columns[i].name

    def _malform_date(self, row: list) -> str | None:
        elig, columns = self.elig, self.spec.columns
        # Garble a date the row actually carries; an invented value in an empty optional column
        # (a closed date on an open account) would be a second oddity.
        filled = [i for i in elig.dates if row[i] is not None] or elig.dates
        i = filled[int(self.rng.integers(len(filled)))]
        fmt = columns[i].fmt or "%Y-%m-%d"
        when = _FALLBACK_WHEN if row[i] is None else dt.datetime.strptime(row[i], fmt)
        in_key = i in elig.key_idx
        first = 4 if in_key else int(self.rng.integers(5))
        for variant in range(first, first + 5):
            row[i] = malformed_temporal(fmt, when, variant)
            if not in_key:
                return columns[i].name
            # The corrupted key must not repeat another corrupted key, or this row would also
            # be a duplicate and carry two defects.
            key = tuple(row[k] for k in elig.key_idx)
            if key not in self._bad_keys:
                self._bad_keys.add(key)
                return columns[i].name
        return None

    def _duplicate(self, rows: list, pos: int, inserts: dict, bad_at: dict) -> bool:
        if pos == 0:
            return False
        for _ in range(8):
            src = int(self.rng.integers(pos))
            if src not in bad_at and isinstance(rows[src], tuple):
                break
        else:
            return False
        copy = self._decode(rows[src])
        amount_cols = self.elig.mins or self.elig.numbers
        if amount_cols and self.rng.random() < 0.5:
            i = amount_cols[int(self.rng.integers(len(amount_cols)))]
            if copy[i] is not None:
                changed = round(_as_float(copy[i], 0.0) * float(self.rng.uniform(0.5, 1.5)), 2)
                copy[i] = changed if self._json else "%.2f" % changed
        inserts[pos] = (self._encode(copy), (self._key_text(copy), "duplicate_key", ""))
        return True

    def _truncate(self, row: tuple, values: list) -> str | None:
        if self._json:
            text = self._line % row
            keep = 1 + max(self.elig.key_idx or [0])
            prefix = len(_ENCODE(dict(zip(self.spec.headers[:keep], values[:keep])))) - 1
            return text[:int(self.rng.integers(prefix + 1, len(text) - 1))]
        k = self.elig.cut_after
        delim = self.spec.delimiter
        for value in row[:k]:
            text = "" if value is None else str(value)
            if any(ch in text for ch in ('"', delim, "\n", "\r")):
                return None
        buf = io.StringIO()
        csv.writer(buf, delimiter=delim, lineterminator="").writerow(row)
        line, cut = buf.getvalue(), -1
        for _ in range(k):
            cut = line.index(delim, cut + 1)
        return line[:cut + 1]

    def _key_text(self, values: list) -> str:
        return "|".join("" if values[k] is None else str(values[k]) for k in self.elig.key_idx)

    def _emit(self, items: list, raw_positions: list[int]) -> None:
        if self._json:
            line = self._line
            self._fh.write("\n".join(item.text if isinstance(item, _Raw) else line % item
                                     for item in items) + "\n")
            return
        start = 0
        for i in raw_positions:
            self._csv.writerows(items[start:i])
            self._fh.write(items[i].text + "\n")
            start = i + 1
        self._csv.writerows(items[start:])


def _merge(rows: list, inserts: dict, bad_at: dict) -> tuple[list, list]:
    """Rows with duplicates placed right after their planned position; marks carry final indices."""
    marks, items, prev, shift = [], [], 0, 0
    for pos in sorted(set(bad_at) | set(inserts)):
        if pos in bad_at:
            marks.append((pos + shift, bad_at[pos]))
        if pos in inserts:
            items.extend(rows[prev:pos + 1])
            prev = pos + 1
            shift += 1
            row, info = inserts[pos]
            marks.append((pos + shift, info))
            items.append(row)
    items.extend(rows[prev:])
    return items, marks


def _as_float(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
