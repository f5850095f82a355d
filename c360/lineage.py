"""Lineage: OpenLineage settings for Airflow and Spark, the local event files, and `c360 lineage TABLE`.

Airflow's OpenLineage provider and the openlineage-spark listener each append their events as
JSON lines to a file under `lineage.events` (a Marquez URL in conf adds an HTTP transport).
`c360 lineage TABLE` joins those events with the table's Delta history and the run log: the
tables and jobs upstream of TABLE, and which DAG run wrote each of its recent versions.

The Delta logs are read here with delta-rs (the `deltalake` package) instead of Spark, so
Airflow callbacks and this report answer in a second without starting a JVM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from c360.catalog import load_catalog
from c360.config import Config, ConfigError, load_config

log = logging.getLogger(__name__)

AIRFLOW_EVENTS = "airflow.jsonl"
SPARK_EVENTS = "spark.jsonl"
SPARK_LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"
MARQUEZ_ENDPOINT = "api/v1/lineage"
_LIMIT_NODE = "org.apache.spark.sql.catalyst.plans.logical.GlobalLimit"
# Commits that change no rows, and the metrics a MERGE reports its changed rows in.
_NO_DATA_OPERATIONS = ("RESTORE", "OPTIMIZE", "VACUUM START", "VACUUM END", "CREATE TABLE", "SET TBLPROPERTIES")
_MERGE_METRICS = ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")
_LANDING_FILE = re.compile(r"^(?P<system>[^/]+)/(?P<feed>[^/]+)/date=[^/]+/[^/]+$")


# ---- settings -----------------------------------------------------------------------------

def events_dir(cfg: Config) -> Path:
    """Folder of the OpenLineage event files (created on demand)."""
    return Path(cfg.path(cfg.lineage.events))


def airflow_transport(cfg: Config) -> dict:
    """The OpenLineage provider's transport: the local file, plus Marquez when conf names one."""
    file_transport = {"type": "file", "log_file_path": str(events_dir(cfg) / AIRFLOW_EVENTS), "append": True}
    if not cfg.lineage.marquez_url:
        return file_transport
    # Composite: the local file stays complete even while Marquez is unreachable.
    return {"type": "composite", "continue_on_failure": True, "continue_on_success": True,
            "transports": {"file": file_transport,
                           "marquez": {"type": "http", "url": cfg.lineage.marquez_url, "endpoint": MARQUEZ_ENDPOINT}}}


def spark_settings(cfg: Config) -> dict[str, str]:
    """Spark properties that turn on the openlineage-spark listener with the configured transport."""
    if not cfg.lineage.enabled:
        return {}
    location = str(events_dir(cfg) / SPARK_EVENTS)
    settings = {
        "spark.extraListeners": SPARK_LISTENER, "spark.openlineage.namespace": cfg.lineage.namespace,
        # Quality suites and the jobs' own checks read with LIMIT (first(), take()): hundreds of
        # read-only events per run that name no output and say nothing about lineage.
        "spark.openlineage.filter.deniedSparkNodes": f"[{_LIMIT_NODE}]",
    }
    if not cfg.lineage.marquez_url:
        return settings | {"spark.openlineage.transport.type": "file",
                           "spark.openlineage.transport.location": location}
    prefix = "spark.openlineage.transport"
    return settings | {
        f"{prefix}.type": "composite", f"{prefix}.continueOnFailure": "true",
        f"{prefix}.transports.file.type": "file", f"{prefix}.transports.file.location": location,
        f"{prefix}.transports.marquez.type": "http", f"{prefix}.transports.marquez.url": cfg.lineage.marquez_url,
        f"{prefix}.transports.marquez.endpoint": f"/{MARQUEZ_ENDPOINT}",
    }


# ---- Delta logs without a JVM -------------------------------------------------------------

def delta_uri(location: str) -> str:
    """The URI delta-rs understands for a table location (Hadoop's s3a:// is plain s3:// there)."""
    return re.sub(r"^s3[an]://", "s3://", location)


def open_table(cfg: Config, name: str):
    """The delta-rs DeltaTable of catalog table `name`, or None when it has not been created yet."""
    from deltalake import DeltaTable

    location = delta_uri(load_catalog(cfg).table(name).location(cfg))
    if "://" not in location and not (Path(location) / "_delta_log").is_dir():
        return None
    try:
        return DeltaTable(location)
    except Exception as exc:  # delta-rs raises TableNotFoundError, a private class, for a missing table
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            return None
        raise


def commit_run(commit: dict) -> dict:
    """The run metadata (job, run_id, run_date, ...) a commit carries, {} when it has none."""
    raw = commit.get("userMetadata")
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def rows_of_commit(commit: dict) -> int:
    """Rows a commit wrote: inserted + updated + deleted for a MERGE, the output rows of a write."""
    metrics = commit.get("operationMetrics") or {}
    if commit.get("operation") in _NO_DATA_OPERATIONS:
        return 0
    merged = [metrics.get(k) for k in _MERGE_METRICS if metrics.get(k) is not None]
    if merged:
        return sum(int(m) for m in merged)
    # numOutputRows also counts rows a MERGE copied unchanged, so it is used for plain writes only.
    for key in ("numOutputRows", "num_added_rows", "numDeletedRows", "numUpdatedRows"):
        if metrics.get(key) is not None:
            return int(metrics[key])
    return 0


def table_history(cfg: Config, name: str, limit: int | None = None) -> list[dict]:
    """Commits of `name`, newest first (version, timestamp, operation, metrics, run metadata); [] if absent."""
    table = open_table(cfg, name)
    return [] if table is None else table.history(limit)


def table_state(cfg: Config, name: str) -> tuple[int, int] | None:
    """(current version, row count) of `name` from its Delta log's file statistics; None if absent."""
    table = open_table(cfg, name)
    if table is None:
        return None
    actions = table.get_add_actions(flatten=True)
    columns = actions.column_names
    records = actions.column("num_records").to_pylist() if "num_records" in columns else []
    if not records or any(r is None for r in records):
        # No statistics in the log (a writer that skips them): count the data instead.
        return table.version(), table.to_pyarrow_dataset().count_rows()
    deleted = 0
    if "deletionVector.cardinality" in columns:
        deleted = sum(c or 0 for c in actions.column("deletionVector.cardinality").to_pylist())
    return table.version(), int(sum(records)) - int(deleted)


# ---- events -------------------------------------------------------------------------------

def read_events(cfg: Config) -> Iterator[dict]:
    """Every OpenLineage event in the event files, oldest file first; unreadable lines are skipped."""
    folder = events_dir(cfg)
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        bad = 0
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    yield json.loads(line)
                except ValueError:
                    bad += 1
        if bad:
            log.warning("%s: skipped %d lines that are not JSON (an event cut short by a crash)", path, bad)


def location_key(location: str) -> str:
    """A comparable key for a storage location: scheme-normalised, no trailing slash."""
    location = delta_uri(location.rstrip("/"))
    if location.startswith("file:"):
        location = "/" + location[len("file:"):].lstrip("/")
    return location


def dataset_key(dataset: dict) -> str:
    """The storage location an OpenLineage dataset names, as a location_key."""
    namespace, name = str(dataset.get("namespace", "")), str(dataset.get("name", ""))
    if namespace in ("file", "file://", "") or namespace.startswith("file:"):
        return location_key(name if name.startswith("/") else f"/{name}")
    return location_key(f"{namespace.rstrip('/')}/{name.lstrip('/')}")


@dataclass
class Catalogue:
    """Maps storage locations back to catalog table names and landing feeds."""

    tables: dict[str, str]
    landing_root: str

    @classmethod
    def of(cls, cfg: Config) -> "Catalogue":
        """The locations of every catalogued table of `cfg`, and its landing root."""
        tables = {location_key(t.location(cfg)): n for n, t in load_catalog(cfg).tables.items()}
        return cls(tables, location_key(cfg.path(cfg.lakehouse.landing)))

    def name(self, key: str) -> str:
        """Table name of a location, `landing:<system>/<feed>` for a landing file, else the location."""
        if key in self.tables:
            return self.tables[key]
        if key.startswith(self.landing_root + "/"):
            match = _LANDING_FILE.match(key[len(self.landing_root) + 1:])
            if match:
                return f"landing:{match['system']}/{match['feed']}"
        return key


@dataclass
class JobSeen:
    """A Spark application that wrote a table, with the Airflow task that launched it."""

    job: str
    parent: str | None
    runs: set = field(default_factory=set)
    actions: set = field(default_factory=set)
    last_seen: str = ""


def _parent(event: dict) -> tuple[str | None, str | None]:
    """(job name, run id) of the run that launched an event's run, e.g. a Spark action's application."""
    parent = ((event.get("run") or {}).get("facets") or {}).get("parent") or {}
    return (parent.get("job") or {}).get("name"), (parent.get("run") or {}).get("runId")


def build_graph(events: Iterable[dict], catalogue: Catalogue) -> tuple[dict, dict]:
    """From completed Spark events: inputs per output table, and the applications (and tasks) that wrote each."""
    inputs: dict[str, set[str]] = defaultdict(set)
    writes = []
    # Spark action -> its application (parent) -> the Airflow task that ran spark-submit (grandparent).
    launched_by: dict[str, str] = {}
    for event in events:
        run_id = (event.get("run") or {}).get("runId")
        parent, parent_run = _parent(event)
        if run_id and parent:
            launched_by[run_id] = parent
        # Table writes come from the Spark listener; Airflow's events name tasks' Assets.
        spark = "/integration/spark" in str(event.get("producer", ""))
        if not spark or event.get("eventType") != "COMPLETE" or not event.get("outputs"):
            continue
        sources = {catalogue.name(dataset_key(d)) for d in event.get("inputs") or []}
        for output in event["outputs"]:
            table = catalogue.name(dataset_key(output))
            inputs[table] |= sources - {table}
            writes.append((table, parent or "?", parent_run, (event.get("job") or {}).get("name", "?"),
                           str(event.get("eventTime", ""))))
    writers: dict[str, dict[tuple, JobSeen]] = defaultdict(dict)
    for table, app, app_run, action, when in writes:
        task = launched_by.get(app_run) if app_run else None
        seen = writers[table].setdefault((app, task), JobSeen(job=app, parent=task))
        seen.runs.add(app_run)
        seen.actions.add(action)
        seen.last_seen = max(seen.last_seen, when)
    return inputs, writers


def with_declared_sources(inputs: dict[str, set[str]], cfg: Config) -> dict[str, dict[str, str]]:
    """Per table, each input with how it is known: `seen` in events, `declared` in the catalog, or both.

    A MERGE whose source DataFrame was cached shows only its target in Spark's events (the
    listener cannot see through the cache), so the catalog's declared sources fill that gap.
    """
    edges: dict[str, dict[str, str]] = defaultdict(dict)
    for table, sources in inputs.items():
        edges[table].update({s: "seen" for s in sources})
    for name, spec in load_catalog(cfg).tables.items():
        for source in spec.sources:
            edges[name][source] = "seen, declared" if edges[name].get(source) else "declared"
    return edges


def upstream(table: str, inputs: dict) -> list[tuple[str, int, str]]:
    """Tables (and landing feeds) upstream of `table`: (name, distance, how the edge is known), nearest first."""
    found: dict[str, tuple[int, str]] = {}
    frontier, depth = {table}, 0
    while frontier:
        depth += 1
        nxt = set()
        for node in sorted(frontier):
            sources = inputs.get(node, {})
            for source in sorted(sources):
                if source not in found and source != table:
                    found[source] = (depth, sources[source] if isinstance(sources, dict) else "seen")
                    nxt.add(source)
        frontier = nxt
    return sorted(((n, d, how) for n, (d, how) in found.items()), key=lambda item: (item[1], item[0]))


# ---- the report ---------------------------------------------------------------------------

def run_log_index(cfg: Config) -> dict[tuple[str, str], dict]:
    """(run_id, table) -> the run-log row of the task that wrote `table` in that run."""
    table = open_table(cfg, "ops.run_log")
    if table is None:
        return {}
    index = {}
    for row in table.to_pyarrow_table().to_pylist():
        for written in (row.get("tables_written") or "").split(","):
            if written:
                index[(row["run_id"], written)] = row
    return index


def version_rows(cfg: Config, table: str, limit: int) -> list[dict]:
    """The newest `limit` versions of `table` with the run that wrote each and its Airflow task."""
    runs = run_log_index(cfg)
    rows = []
    for commit in table_history(cfg, table, limit):
        meta = commit_run(commit)
        task = runs.get((meta.get("run_id"), table), {})
        stamp = dt.datetime.fromtimestamp(int(commit["timestamp"]) / 1000, dt.timezone.utc)
        rows.append({"version": commit.get("version"), "timestamp": stamp.strftime("%Y-%m-%d %H:%M:%S"),
                     "operation": commit.get("operation"), "job": meta.get("job"), "run_id": meta.get("run_id"),
                     "run_date": meta.get("run_date"), "rows": rows_of_commit(commit),
                     "dag_id": task.get("dag_id"), "task_id": task.get("task_id"), "state": task.get("state")})
    return rows


def report(cfg: Config, table: str, versions: int = 10) -> dict:
    """Everything `c360 lineage TABLE` shows, as one JSON-able dict."""
    spec = load_catalog(cfg).table(table)
    inputs, writers = build_graph(read_events(cfg), Catalogue.of(cfg))
    edges = with_declared_sources(inputs, cfg)
    jobs = [{"spark_job": j.job, "airflow_task": j.parent, "runs": len(j.runs - {None}), "actions": len(j.actions),
             "last_seen": j.last_seen}
            for j in sorted(writers.get(table, {}).values(), key=lambda j: (j.parent or "", j.job))]
    return {
        "table": table, "location": spec.location(cfg), "grain": spec.grain,
        "upstream": [{"name": n, "distance": d, "known_from": how} for n, d, how in upstream(table, edges)],
        "jobs": jobs, "versions": version_rows(cfg, table, versions), "events": str(events_dir(cfg)),
    }


def render(rep: dict) -> str:
    """The report as the text a data engineer reads in a terminal."""
    lines = [f"{rep['table']}  ({rep['grain']})", f"  location: {rep['location']}", "", "upstream (nearest first; seen in lineage events, declared in the catalog):"]
    lines += [f"  {'  ' * (u['distance'] - 1)}<- {u['name']}  ({u['known_from']})" for u in rep["upstream"]] or [
        "  none recorded: no lineage event or catalog entry names a source of this table"]
    lines += ["", "jobs that write it (Airflow task -> Spark job):"]
    lines += [f"  {j['airflow_task'] or '(outside Airflow)'} -> {j['spark_job']}  ({j['runs']} runs, "
              f"{j['actions']} kinds of write, last {j['last_seen'][:19]})"
              for j in rep["jobs"]] or ["  none recorded yet"]
    lines += ["", f"{'version':>7}  {'committed (UTC)':19}  {'operation':14} {'job':18} {'rows':>7}  run"]
    for v in rep["versions"]:
        task = f"  [{v['dag_id']}.{v['task_id']} {v['state']}]" if v["dag_id"] else ""
        lines.append(f"{v['version']:>7}  {v['timestamp']:19}  {v['operation'] or '-':14} {v['job'] or '-':18} "
                     f"{v['rows']:>7}  {v['run_id'] or '(no run metadata)'}{task}")
    lines += ["", f"events: {rep['events']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m c360.lineage TABLE` (and `c360 lineage TABLE`): upstream, jobs and recent runs of a table."""
    parser = argparse.ArgumentParser(prog="c360 lineage", description=main.__doc__)
    parser.add_argument("table", help="catalog table, e.g. gold.customer_360")
    parser.add_argument("--versions", type=int, default=10, help="recent versions to show")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--env", help="config overlay (default: $C360_ENV or local)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.env)
        rep = report(cfg, args.table, args.versions)
    except ConfigError as exc:
        sys.stderr.write(f"c360: error: {exc}\n")
        return 3
    sys.stdout.write((json.dumps(rep, indent=2, default=str) if args.json else render(rep)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
