"""Landing files: listing (empty files too), byte-level accounting, and reading them as their contract says.

Every file that arrives is accounted for before Spark parses it. One streaming pass over its bytes
(`scan`) gives the checksum, the size, the physical lines, the records an RFC 4180 / JSON-lines
parser must find, whether every byte is valid in the feed's declared encoding, and, for a CSV
whose quote never closes, the line where that quote opens. Bronze then checks Spark's parse
against these numbers, so a file can no longer lose records without a count anywhere.

The pass runs on the driver over a pyarrow file system (local paths and object storage alike):
it streams in fixed-size chunks and counts with numpy, so memory stays flat whatever the size.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass

import numpy as np
from pyarrow import fs as pafs
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from c360.catalog import SourceFeed
from c360.config import Config
from c360.errors import UserError

log = logging.getLogger(__name__)
CORRUPT_COLUMN = "_corrupt_record"
# Bytes read per step of the scan: large enough for numpy to run at memory speed, small enough
# that the scan's memory does not grow with the file.
CHUNK_BYTES = 8 << 20
_NEWLINE, _CR, _QUOTE = 10, 13, 34
_LAYOUT = re.compile(r"^(?P<system>[^/]+)/(?P<feed>[^/]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/[^/]+$")


class LandingError(UserError):
    """A landing file cannot be read as its contract says; the message names the file."""


@dataclass(frozen=True)
class LandingFile:
    """One file that arrived: where it is and what its bytes hold."""

    source_file: str          # relative to the landing root: <system>/<feed>/date=<D>/<name>
    path: str                 # as the file system names it, for Spark
    size_bytes: int
    checksum: str             # sha-256 of the bytes, hex
    physical_lines: int       # newline-terminated lines, plus a last line without one
    records: int              # records the file holds by its format (CSV: after the header)
    valid_encoding: bool      # every byte decodes in the feed's encoding
    open_quote_line: int | None = None    # CSV: physical line whose quote no later line closes
    open_quote_offset: int | None = None  # ... and the byte offset where that line starts
    records_before_open_quote: int = 0    # records that end before that line


# ---- listing -----------------------------------------------------------------------------


def _filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system of `root` and the path within it (s3a:// is S3 to pyarrow)."""
    uri = re.sub(r"^s3[an]://", "s3://", root)
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri.rstrip("/")
    filesystem, path = pafs.FileSystem.from_uri(uri)
    return filesystem, path.rstrip("/")


def list_files(cfg: Config, landing_date=None) -> list[tuple[str, str, int]]:
    """Landing files (source_file, path, size) of one date or all, empty files included, in path order."""
    root = cfg.path(cfg.lakehouse.landing)
    filesystem, base = _filesystem(root)
    if filesystem.get_file_info(base).type == pafs.FileType.NotFound:
        return []
    found = []
    for info in filesystem.get_file_info(pafs.FileSelector(base, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(base):].lstrip("/")
        # Hidden and temporary files (an upload in progress, .DS_Store) are not deliveries.
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue
        match = _LAYOUT.match(relative)
        if landing_date is not None and (not match or match["date"] != landing_date.isoformat()):
            continue
        if match is None:
            raise LandingError(f"{relative}: not <system>/<feed>/date=YYYY-MM-DD/<file> under the landing root {root}")
        path = info.path if "://" not in root else f"{root.rstrip('/')}/{relative}"
        found.append((relative, path, int(info.size)))
    return sorted(found)


def landing_dates(cfg: Config) -> list:
    """Every landing date that has files, in order."""
    import datetime as dt

    return sorted({dt.date.fromisoformat(_LAYOUT.match(f)["date"]) for f, _, _ in list_files(cfg)})


# ---- the byte-level scan -------------------------------------------------------------------


class _LineCounter:
    """Counts physical lines and record starts over a stream of chunks, tracking CSV quote state.

    A record starts on a non-blank line that begins outside quotes (RFC 4180: quotes inside a
    quoted value are doubled, so the count of quotes before a point says whether it is quoted).
    """

    def __init__(self, track_quotes: bool) -> None:
        self.track_quotes = track_quotes
        self.offset = 0            # bytes seen
        self.quotes = 0            # quote characters seen
        self.lines = 0             # newlines seen
        self.record_starts = 0
        self.line_start = 0        # offset where the current line starts
        self.line_quoted = False   # the current line starts inside quotes
        self.line_blank = True     # the current line holds nothing but \r so far
        self.last_start_line = 0   # 1-based line of the last record start
        self.last_start_offset = 0

    def feed(self, chunk: bytes) -> None:
        """Account for the next chunk of the file."""
        data = np.frombuffer(chunk, dtype=np.uint8)
        newlines = np.flatnonzero(data == _NEWLINE)
        quotes = np.cumsum(data == _QUOTE, dtype=np.int64) if self.track_quotes else None
        if len(newlines):
            self._lines_ending_here(data, newlines, quotes)
        else:
            self.line_blank = self.line_blank and bool(np.all(data == _CR))
        if quotes is not None and len(data):
            self.quotes += int(quotes[-1])
        self.offset += len(data)

    def _lines_ending_here(self, data: np.ndarray, newlines: np.ndarray, quotes: np.ndarray | None) -> None:
        """Count the lines that end in this chunk; the first continues the line carried over."""
        starts = np.concatenate(([0], newlines[:-1] + 1))
        lengths = newlines - starts
        ends_in_cr = np.zeros(len(newlines), dtype=bool)
        nonempty = lengths > 0
        ends_in_cr[nonempty] = data[newlines[nonempty] - 1] == _CR
        # A blank line (nothing, or a lone \r) is no record to either parser.
        blank = (lengths == 0) | ((lengths == 1) & ends_in_cr)
        blank[0] = self.line_blank and bool(np.all(data[:newlines[0]] == _CR))
        if quotes is not None:
            before = self.quotes + np.concatenate(([0], quotes[newlines[:-1]]))
            quoted = (before & 1).astype(bool)
        else:
            quoted = np.zeros(len(newlines), dtype=bool)
        quoted[0] = self.line_quoted
        is_start = ~quoted & ~blank
        self.record_starts += int(is_start.sum())
        if is_start.any():
            last = int(np.flatnonzero(is_start)[-1])
            self.last_start_line = self.lines + 1 + last
            self.last_start_offset = self.line_start if last == 0 else self.offset + int(starts[last])
        self.lines += len(newlines)
        self.line_start = self.offset + int(newlines[-1]) + 1
        self.line_quoted = bool((self.quotes + int(quotes[newlines[-1]])) & 1) if quotes is not None else False
        self.line_blank = bool(np.all(data[newlines[-1] + 1:] == _CR))

    def _close_line(self, quoted: bool, blank: bool, start: int) -> None:
        self.lines += 1
        if not quoted and not blank:
            self.record_starts += 1
            self.last_start_line, self.last_start_offset = self.lines, start

    def finish(self) -> None:
        """Account for a last line that has no newline."""
        if self.offset > self.line_start:
            self._close_line(self.line_quoted, self.line_blank, self.line_start)
            self.line_start = self.offset

    @property
    def quote_open(self) -> bool:
        return self.track_quotes and self.quotes % 2 == 1


def scan(source_file: str, path: str, feed: SourceFeed) -> LandingFile:
    """Read a landing file's bytes once: checksum, size, physical lines, records and encoding validity."""
    filesystem, inner = _filesystem(path)
    digest = hashlib.sha256()
    counter = _LineCounter(track_quotes=feed.format == "csv")
    decoder = codecs.getincrementaldecoder(feed.encoding)("strict")
    valid = True
    with filesystem.open_input_stream(inner) as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
            counter.feed(chunk)
            if valid:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    valid = False
    counter.finish()
    if valid:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            valid = False
    header_lines = 1 if feed.format == "csv" and counter.record_starts else 0
    records = max(counter.record_starts - header_lines, 0)
    open_line = open_offset = None
    before = records
    if counter.quote_open:
        open_line, open_offset = counter.last_start_line, counter.last_start_offset
        # The record that opens the quote is not a record of the good part; the header never is one.
        before = max(counter.record_starts - 1 - header_lines, 0)
    return LandingFile(
        source_file=source_file, path=path, size_bytes=counter.offset, checksum=digest.hexdigest(),
        physical_lines=counter.lines, records=records, valid_encoding=valid,
        open_quote_line=open_line, open_quote_offset=open_offset, records_before_open_quote=before,
    )


def tail_lines(path: str, offset: int, encoding: str) -> list[str]:
    """The physical lines of a file from byte `offset` on (for quarantine; bad bytes shown as U+FFFD)."""
    filesystem, inner = _filesystem(path)
    with filesystem.open_input_file(inner) as handle:
        handle.seek(offset)
        text = handle.read().decode(encoding, errors="replace")
    return text.splitlines()


def prefix_copy(cfg: Config, path: str, length: int) -> str:
    """Copy the first `length` bytes of a file to a scratch file under the lakehouse; returns its path."""
    filesystem, inner = _filesystem(path)
    scratch_root = f"{cfg.path(cfg.lakehouse.root).rstrip('/')}/_scratch/landing"
    scratch_fs, scratch_dir = _filesystem(scratch_root)
    scratch_fs.create_dir(scratch_dir, recursive=True)
    target = f"{scratch_dir}/{uuid.uuid4().hex}{path[path.rfind('.'):]}"
    with filesystem.open_input_stream(inner) as source, scratch_fs.open_output_stream(target) as out:
        remaining = length
        while remaining > 0 and (chunk := source.read(min(CHUNK_BYTES, remaining))):
            out.write(chunk)
            remaining -= len(chunk)
    return target if "://" not in scratch_root else f"{scratch_root}/{target.rsplit('/', 1)[1]}"


def remove(path: str) -> None:
    """Delete a scratch file (missing is fine)."""
    filesystem, inner = _filesystem(path)
    try:
        filesystem.delete_file(inner)
    except FileNotFoundError:
        pass


# ---- reading with Spark --------------------------------------------------------------------


def _csv_header(spark: SparkSession, path: str, feed: SourceFeed) -> list[str]:
    first = spark.read.option("encoding", feed.encoding).text(path).first()
    if first is None:
        raise LandingError(f"{path}: empty file, expected a header line")
    line = first[0].lstrip("\ufeff")
    # Kept as written (padding too): Spark compares a CSV schema's names with the header.
    return next(csv.reader([line], delimiter=feed.delimiter))


def _check_json_keys(spark: SparkSession, feed: SourceFeed, path: str) -> None:
    """Raise when records of a JSON-lines file carry keys the contract lacks (the export's schema drifted)."""
    known = F.array(*[F.lit(c.header) for c in feed.columns])
    lines = spark.read.text(path).filter(F.trim(F.col("value")) != "")
    numbered = Window.orderBy("_mono").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    # json_object_keys is null for a line that is no JSON object: those are truncated records,
    # which bronze quarantines, not drift.
    drift = (
        lines.withColumn("_mono", F.monotonically_increasing_id())
        .withColumn("_record_no", F.row_number().over(numbered))
        .withColumn("_unknown", F.array_except(F.coalesce(F.json_object_keys("value"), F.array()), known))
        .filter(F.size("_unknown") > 0)
        .select("_record_no", "_unknown")
    )
    found = drift.limit(5).collect()
    if found:
        keys = sorted({k for r in found for k in r["_unknown"]})
        records = ", ".join(str(r["_record_no"]) for r in found)
        raise LandingError(
            f"{path}: records {records} have keys {keys} that the {feed.system}.{feed.feed} contract does not "
            "declare; add them to conf/sources.yaml or fix the export")


def read_landing(spark: SparkSession, feed: SourceFeed, path: str, name: str | None = None) -> DataFrame:
    """Read one landing file of `feed` as raw strings with canonical names, `_record_no` and `_corrupt_record`.

    `name` is how errors call the file (the delivered file's path when `path` is a scratch copy).
    """
    shown = name or path
    by_header = {c.header.strip().casefold(): c.name for c in feed.columns}
    if feed.format == "csv":
        header = _csv_header(spark, path, feed)
        unknown = [h for h in header if h.strip().casefold() not in by_header]
        missing = sorted(set(by_header) - {h.strip().casefold() for h in header})
        if unknown or missing:
            raise LandingError(
                f"{shown}: header does not match the {feed.system}.{feed.feed} contract; "
                f"unknown columns {unknown}, missing columns {missing}")
        schema = T.StructType([T.StructField(n, T.StringType()) for n in header + [CORRUPT_COLUMN]])
        # RFC 4180 escaping (a quote inside a quoted value is doubled), as the exports and the
        # scan's quote accounting assume; Spark's default escape is a backslash.
        raw = (
            spark.read.schema(schema)
            .options(header=True, sep=feed.delimiter, mode="PERMISSIVE", multiLine=True, escape='"',
                     columnNameOfCorruptRecord=CORRUPT_COLUMN, enforceSchema=True, encoding=feed.encoding)
            .csv(path)
            .select(*[F.col(f"`{h}`").alias(by_header[h.strip().casefold()]) for h in header], F.col(CORRUPT_COLUMN))
        )
    else:
        _check_json_keys(spark, feed, path)
        schema = T.StructType([T.StructField(c.header, T.StringType()) for c in feed.columns]
                              + [T.StructField(CORRUPT_COLUMN, T.StringType())])
        options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN, "encoding": feed.encoding}
        if feed.encoding != "utf-8":
            # Spark needs the line separator spelled out to split JSON lines in another encoding.
            options["lineSep"] = "\n"
        raw = (
            spark.read.schema(schema).options(**options).json(path)
            .select(*[F.col(c.header).alias(c.name) for c in feed.columns], F.col(CORRUPT_COLUMN))
        )
    # Rows keep file order within and across the splits of one file, so numbering them by the
    # monotonic id gives the 1-based record number people see when they open the file.
    window = Window.orderBy("_mono").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return (
        raw.withColumn("_mono", F.monotonically_increasing_id())
        .withColumn("_record_no", F.row_number().over(window).cast("long"))
        .drop("_mono")
    )
