"""The generator's view of conf/sources.yaml (parsed by c360.catalog, which bronze ingest reads too): file quirks and date formats."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Callable

from c360.catalog import SourceColumn, parse_sources
from c360.config import read_conf_yaml

# File quirks sources.yaml only describes in comments; a key of the same name in a system's
# YAML block wins, so the contract can take these over without a code change.
_SYSTEM_QUIRKS = {"crm": {"bom": True, "header_suffix": " "}}
_SPARK_TOKENS = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
# Where each strftime field sits in numpy's ISO rendering "YYYY-MM-DDTHH:MM:SS".
_ISO_SLICES = {
    "%Y": slice(0, 4), "%m": slice(5, 7), "%d": slice(8, 10),
    "%H": slice(11, 13), "%M": slice(14, 16), "%S": slice(17, 19),
}
_FIELD = re.compile(r"(%[YmdHMS%])")
FILE_EXTENSIONS = {"csv": "csv", "jsonl": "jsonl"}


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a feed: canonical name, file spelling and the rules bronze applies."""

    name: str
    header: str
    type: str
    fmt: str | None = None
    required: bool = False
    min: float | None = None
    allowed: tuple[str, ...] | None = None
    domain: str | None = None


@dataclass(frozen=True)
class FeedSpec:
    """One feed of one source system, as the contract describes its files."""

    system: str
    feed: str
    file_format: str
    delimiter: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    bom: bool = False
    header_suffix: str = ""

    @property
    def headers(self) -> tuple[str, ...]:
        """Header spellings in file column order."""
        return tuple(c.header for c in self.columns)

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical column names in file column order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The spec of canonical column `name`."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.system}.{self.feed} has no column {name}")

    def relpath(self, landing_date: dt.date) -> str:
        """Path of this feed's file for `landing_date`, relative to the landing root."""
        ext = FILE_EXTENSIONS[self.file_format]
        return (f"{self.system}/{self.feed}/date={landing_date.isoformat()}/"
                f"{self.feed}_{landing_date:%Y%m%d}.{ext}")


@dataclass(frozen=True)
class Contract:
    """All feeds of sources.yaml keyed by (system, feed), plus the value domains."""

    feeds: dict[tuple[str, str], FeedSpec]
    domains: dict[str, tuple[str, ...]]

    def feed(self, system: str, feed: str) -> FeedSpec:
        """The spec of `system`.`feed`."""
        return self.feeds[(system, feed)]


def spark_to_strftime(pattern: str) -> str:
    """Translate a Spark datetime pattern such as yyyy-MM-dd'T'HH:mm:ss'Z' to strftime."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = pattern.index("'", i + 1)
            out.append(pattern[i + 1:end].replace("%", "%%") if end > i + 1 else "'")
            i = end + 1
        elif ch.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == ch:
                j += 1
            token = pattern[i:j]
            if token not in _SPARK_TOKENS:
                raise ValueError(f"unsupported Spark datetime token {token!r} in {pattern!r}")
            out.append(_SPARK_TOKENS[token])
            i = j
        else:
            out.append("%%" if ch == "%" else ch)
            i += 1
    return "".join(out)


def iso_formatter(fmt: str) -> Callable[[str], str]:
    """A function rendering an ISO 'YYYY-MM-DDTHH:MM:SS' string in strftime format `fmt`."""
    template, slices = [], []
    for part in _FIELD.split(fmt):
        if part in _ISO_SLICES:
            template.append("%s")
            slices.append(_ISO_SLICES[part])
        else:
            template.append(part if part == "%%" else part.replace("%", "%%"))
    tpl = "".join(template)
    if not slices:
        return lambda _s: tpl % ()
    getter = itemgetter(*slices)
    if len(slices) == 1:
        return lambda s: tpl % (getter(s),)
    return lambda s: tpl % getter(s)


def malformed_temporal(fmt: str, when: dt.datetime, variant: int) -> str:
    """A value that looks like a `fmt` date but does not parse: impossible field or wrong shape."""
    fields = {"%Y": f"{when.year:04d}", "%m": f"{when.month:02d}", "%d": f"{when.day:02d}",
              "%H": f"{when.hour:02d}", "%M": f"{when.minute:02d}", "%S": f"{when.second:02d}"}
    variant %= 5
    if variant == 0:
        fields["%m"] = "13"
    elif variant == 1:
        fields["%m"], fields["%d"] = "02", "31"
    elif variant == 2:
        fields["%d"] = "45"
    elif variant == 3:
        return "not-a-date"
    else:
        # The other common convention for the same instant: day-first where the contract says
        # year-first and vice versa; it is unique per original value, so keys stay distinct.
        other = "%d/%m/%Y" if fmt.startswith("%Y") else "%Y-%m-%d"
        return when.strftime(other)
    return "".join(fields.get(part, part.replace("%%", "%")) for part in _FIELD.split(fmt))


def _column(col: SourceColumn) -> ColumnSpec:
    return ColumnSpec(name=col.name, header=col.header, type=col.type,
                      fmt=spark_to_strftime(col.format) if col.format else None, required=col.required,
                      min=float(col.min) if col.min is not None else None, allowed=col.allowed, domain=col.domain)


def load_contract(path: Path) -> Contract:
    """Read sources.yaml at `path` into a Contract, parsed and validated by the catalog's own reader."""
    raw = read_conf_yaml(Path(path).parent, Path(path).name)
    parsed, domains = parse_sources(raw, str(path))
    feeds = {}
    for source in parsed.values():
        sys_raw = raw["systems"][source.system]
        quirks = {**_SYSTEM_QUIRKS.get(source.system, {}),
                  **{k: sys_raw[k] for k in ("bom", "header_suffix") if k in sys_raw}}
        feeds[(source.system, source.feed)] = FeedSpec(
            system=source.system, feed=source.feed, file_format=source.format, delimiter=source.delimiter,
            columns=tuple(_column(c) for c in source.columns), key=source.key,
            bom=bool(quirks.get("bom", False)), header_suffix=str(quirks.get("header_suffix", "")))
    return Contract(feeds=feeds, domains=domains)
