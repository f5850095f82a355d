"""Table catalog and landing contract: conf/tables.yaml and conf/sources.yaml as typed objects."""

from __future__ import annotations

import codecs
import functools
from dataclasses import dataclass
from pathlib import Path

from c360.config import Config, ConfigError, read_conf_yaml

# ops holds the pipeline's own records (the run log), not bank data.
LAYERS = ("bronze", "silver", "gold", "features", "ops")
BRONZE_METADATA = {
    "_source_system": "string",
    "_feed": "string",
    "_source_file": "string",
    "_record_no": "long",
    "_landing_date": "date",
    "_batch_id": "string",
    "_ingested_at": "timestamp",
}
QUARANTINE_REASONS = (
    "truncated_record", "malformed_date", "malformed_number", "negative_amount",
    "unknown_currency", "missing_required", "duplicate_key", "bad_encoding", "unterminated_quote",
)
_COLUMN_TYPES = {"string", "date", "timestamp", "decimal", "int"}
_FORMATS = {"csv", "jsonl"}


@dataclass(frozen=True)
class SourceColumn:
    """One column of a source export: canonical name, the file's header spelling and its rules."""

    name: str
    header: str
    type: str
    format: str | None = None
    required: bool = False
    min: float | None = None
    allowed: tuple[str, ...] | None = None
    domain: str | None = None
    pii: bool = False


@dataclass(frozen=True)
class SourceFeed:
    """One export of a source system: format, key and columns in file order."""

    system: str
    feed: str
    format: str
    delimiter: str
    key: tuple[str, ...]
    columns: tuple[SourceColumn, ...]
    encoding: str = "utf-8"

    @property
    def bronze_table(self) -> str:
        return f"bronze.{self.system}_{self.feed}"

    @property
    def extension(self) -> str:
        return "csv" if self.format == "csv" else "jsonl"

    def column(self, name: str) -> SourceColumn:
        """The column called `name`."""
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class TableSpec:
    """A catalogued table: layer, grain, keys, layout, governance tags and column contract."""

    name: str
    grain: str
    keys: tuple[str, ...]
    columns: dict[str, str]
    partition_by: tuple[str, ...] = ()
    pii: tuple[str, ...] = ()
    retention_days: int = 2555
    change_data_feed: bool = False
    mode: str = "append"
    sources: tuple[str, ...] = ()

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

    def location(self, cfg: Config) -> str:
        """Storage path of the table under the lakehouse root."""
        return f"{cfg.path(cfg.lakehouse.root).rstrip('/')}/{self.layer}/{self.short_name}"


@dataclass(frozen=True)
class Catalog:
    """All tables and source feeds of one configuration."""

    tables: dict[str, TableSpec]
    feeds: dict[str, SourceFeed]
    domains: dict[str, tuple[str, ...]]

    def table(self, name: str) -> TableSpec:
        """The spec of `name`; an unknown name is an error listing the known ones."""
        try:
            return self.tables[name]
        except KeyError:
            raise ConfigError(f"unknown table '{name}'; known tables: {', '.join(sorted(self.tables))}") from None

    def feed(self, system: str, feed: str) -> SourceFeed:
        """The landing feed `system/feed`."""
        try:
            return self.feeds[f"{system}.{feed}"]
        except KeyError:
            raise ConfigError(f"unknown source feed '{system}.{feed}'; known: {', '.join(sorted(self.feeds))}") from None


def parse_sources(sources: dict, origin: str) -> tuple[dict[str, SourceFeed], dict[str, tuple[str, ...]]]:
    """The feeds ("system.feed") and value domains of a parsed sources.yaml, validated; `origin` names
    the file in errors. The one reader of the landing contract: ingest and the generator share it."""
    domains = {k: tuple(v) for k, v in (sources.get("domains") or {}).items()}
    feeds: dict[str, SourceFeed] = {}
    for system, sys_spec in (sources.get("systems") or {}).items():
        if sys_spec.get("format") not in _FORMATS:
            raise ConfigError(f"{origin}: systems.{system}.format must be one of {sorted(_FORMATS)}")
        encoding = _encoding(str(sys_spec.get("encoding", "utf-8")), f"{origin}: systems.{system}.encoding")
        for feed, feed_spec in sys_spec["feeds"].items():
            where = f"{origin}: systems.{system}.feeds.{feed}"
            columns = []
            for name, col in feed_spec["columns"].items():
                if col.get("type") not in _COLUMN_TYPES:
                    raise ConfigError(f"{where}.columns.{name}: type must be one of {sorted(_COLUMN_TYPES)}")
                if col.get("type") in ("date", "timestamp") and not col.get("format"):
                    raise ConfigError(f"{where}.columns.{name}: a {col['type']} column needs a format")
                allowed = col.get("allowed")
                if allowed is not None and allowed not in domains:
                    raise ConfigError(f"{where}.columns.{name}: unknown domain '{allowed}'")
                columns.append(SourceColumn(
                    name=name, header=str(col["header"]), type=col["type"], format=col.get("format"),
                    required=bool(col.get("required", False)), min=col.get("min"),
                    allowed=domains[allowed] if allowed else None, domain=allowed, pii=bool(col.get("pii", False)),
                ))
            key = tuple(feed_spec["key"])
            unknown = set(key) - {c.name for c in columns}
            if unknown:
                raise ConfigError(f"{where}.key names unknown columns {sorted(unknown)}")
            feeds[f"{system}.{feed}"] = SourceFeed(
                system=system, feed=feed, format=sys_spec["format"],
                delimiter=sys_spec.get("delimiter", ","), key=key, columns=tuple(columns), encoding=encoding,
            )
    return feeds, domains


def _bronze_spec(feed: SourceFeed, defaults: dict) -> TableSpec:
    columns = {c.name: "string" for c in feed.columns}
    columns.update(BRONZE_METADATA)
    return TableSpec(
        name=feed.bronze_table,
        grain=f"one row per accepted record of {feed.system}/{feed.feed} exports (_source_file, _record_no)",
        keys=("_source_file", "_record_no"), columns=columns, partition_by=("_landing_date",),
        pii=tuple(c.name for c in feed.columns if c.pii),
        retention_days=int(defaults.get("retention_days", 2555)),
        change_data_feed=bool(defaults.get("change_data_feed", False)), mode="append",
    )


def _table_spec(name: str, spec: dict, defaults: dict, origin: str) -> TableSpec:
    layer = name.split(".", 1)[0]
    if layer not in LAYERS or "." not in name:
        raise ConfigError(f"{origin}: table '{name}' must be <layer>.<name> with layer in {LAYERS}")
    layer_defaults = defaults.get(layer, {})
    known = {"grain", "keys", "columns", "partition_by", "pii", "retention_days", "change_data_feed", "mode", "sources"}
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"{origin}: table '{name}' has unknown keys {sorted(unknown)}")
    columns = {str(k): str(v) for k, v in (spec.get("columns") or {}).items()}
    missing_keys = set(spec.get("keys", [])) - set(columns)
    if missing_keys:
        raise ConfigError(f"{origin}: table '{name}' keys {sorted(missing_keys)} are not among its columns")
    return TableSpec(
        name=name, grain=spec["grain"], keys=tuple(spec.get("keys", [])), columns=columns,
        partition_by=tuple(spec.get("partition_by", [])), pii=tuple(spec.get("pii", [])),
        retention_days=int(spec.get("retention_days", layer_defaults.get("retention_days", 2555))),
        change_data_feed=bool(spec.get("change_data_feed", layer_defaults.get("change_data_feed", False))),
        mode=spec.get("mode", "append"), sources=tuple(spec.get("sources", [])),
    )


# Character sets both Spark's file readers and the landing scan handle (the scan counts lines and
# quotes byte by byte, so only ASCII-compatible single-byte-newline encodings qualify): Python's
# codec name -> the name Spark accepts.
_ENCODINGS = {"utf-8": "utf-8", "iso8859-1": "iso-8859-1", "ascii": "us-ascii"}


def _encoding(name: str, where: str) -> str:
    """The Spark name of character set `name`, or a ConfigError naming the allowed ones."""
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        canonical = None
    if canonical not in _ENCODINGS:
        raise ConfigError(f"{where}: '{name}' is not one of the supported encodings {sorted(_ENCODINGS.values())}")
    return _ENCODINGS[canonical]


@functools.lru_cache(maxsize=8)
def _load(conf_dir: Path) -> Catalog:
    sources = read_conf_yaml(conf_dir, "sources.yaml")
    tables_doc = read_conf_yaml(conf_dir, "tables.yaml")
    feeds, domains = parse_sources(sources, str(conf_dir / "sources.yaml"))
    defaults = tables_doc.get("defaults", {})
    tables = {f.bronze_table: _bronze_spec(f, defaults.get("bronze", {})) for f in feeds.values()}
    for name, spec in (tables_doc.get("tables") or {}).items():
        tables[name] = _table_spec(name, spec, defaults, str(conf_dir / "tables.yaml"))
    return Catalog(tables=tables, feeds=feeds, domains=domains)


def load_catalog(cfg: Config) -> Catalog:
    """The catalog of `cfg`'s conf folder (parsed once per process)."""
    return _load(Path(cfg.conf_dir))
