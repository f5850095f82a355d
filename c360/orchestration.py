"""Airflow side of the pipeline: AIRFLOW_HOME and environment, spark-submit settings, landing, run-log callbacks, local runs.

The DAG files import this module while Airflow parses them, so its module level stays
light (standard library and c360.config only); Spark, delta-rs, pyarrow, the generator and
Airflow itself are imported inside the functions that need them, at task run time.

`python -m c360.orchestration` is the data engineer's entry point on a laptop: `env`
prints the environment for plain `airflow` commands, `run DATE` runs c360_daily for one
logical date (a rerun clears and repeats it), `backfill FROM TO` runs dates in order, and
`standalone` opens the Airflow UI on the same metadata database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

from c360 import entry
from c360.config import PROJECT_ROOT, Config, load_config
from c360.errors import PERMANENT_EXIT_CODES, UserError

log = logging.getLogger(__name__)

DAGS_FOLDER = PROJECT_ROOT / "dags"
JOBS_FOLDER = PROJECT_ROOT / "jobs"
DAILY_DAG = "c360_daily"
MAINTENANCE_DAG = "c360_maintenance"
MODELS_DAG = "c360_models"
RUN_LOG = "ops.run_log"
DAG_RUN_TASK = "-"  # task_id of a run-log row that records a whole DAG run
# How c360.entry starts the one line a job writes for a user or data error (a quality gate's summary).
_ERROR_MARKER = f"{entry.PROG}: error: "
# SparkSubmitHook's failure message, for when its process is not at hand to ask for the exit code.
_HOOK_EXIT_CODE = re.compile(r"Error code is: (-?\d+)\.")


# ---- environment and AIRFLOW_HOME ---------------------------------------------------------

def airflow_home(cfg: Config) -> Path:
    """The project-local AIRFLOW_HOME of `cfg` (SQLite metadata database, airflow.cfg, task logs)."""
    return Path(cfg.path(cfg.orchestration.airflow_home))


def _connection_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def airflow_env(cfg: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for `airflow` commands: project-local home, repo dags/, lineage transport, Spark connection."""
    from c360 import lineage

    env = dict(os.environ if environ is None else environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update({
        "AIRFLOW_HOME": str(airflow_home(cfg)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The project's venv first: spark-submit and airflow are its scripts.
        "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
        "AIRFLOW__OPENLINEAGE__DISABLED": str(not cfg.lineage.enabled),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": cfg.lineage.namespace,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(lineage.airflow_transport(cfg)),
        # SparkSubmitOperator passes the task's OpenLineage run to the Spark listener as its
        # parent, so Spark events link back to the Airflow task that launched them.
        "AIRFLOW__OPENLINEAGE__SPARK_INJECT_PARENT_JOB_INFO": "True",
    })
    if cfg.lineage.enabled and "://" not in cfg.lineage.events:
        # The provider's file transport appends to its file but does not create the folder.
        lineage.events_dir(cfg).mkdir(parents=True, exist_ok=True)
    conn_var = _connection_var(cfg.orchestration.spark_conn_id)
    if conn_var not in env:
        # Airflow does not define the Spark connection: derive it from conf's spark.master.
        env[conn_var] = json.dumps({"conn_type": "spark", "host": cfg.spark.master})
    return env


def ensure_airflow_db(cfg: Config, env: Mapping[str, str]) -> Path:
    """Create or upgrade the SQLite metadata database once per Airflow version (`airflow db migrate`)."""
    from importlib.metadata import version

    home = airflow_home(cfg)
    marker = home / f".c360-db-migrated-{version('apache-airflow-core')}"
    if marker.exists() and (home / "airflow.db").exists():
        return home
    home.mkdir(parents=True, exist_ok=True)
    log.info("airflow db migrate (AIRFLOW_HOME=%s)", home)
    subprocess.run([_airflow_bin(), "db", "migrate"], env=dict(env), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marker.touch()
    return home


def _airflow_bin() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


# ---- spark-submit -------------------------------------------------------------------------

def task_memo(cfg: Config, job: str, application_args: list[str], tables: list[str]):
    """The memo (c360.memo) of a Spark task's run from its rendered arguments; None for a job without memo rules."""
    from c360 import memo

    args = list(application_args)
    day = dt.date.fromisoformat(args[args.index("--date") + 1])
    # The run id names the try, not the work: two tries of the same work share one memo.
    key_args = [a for name, a in zip([None, *args], args) if a not in ("--date", "--run-id")
                and name not in ("--date", "--run-id")]
    try:
        return memo.memo_for(cfg, job, day, key_args, tables)
    except KeyError:
        return None


def skip_if_unchanged(cfg: Config, memo_entry, task_id: str) -> bool:
    """True (and say why in the task log) when the task's last success left everything as it is now."""
    from c360 import memo

    since = memo.unchanged_since(cfg, memo_entry)
    if since is None:
        return False
    log.info("%s: skipped, inputs, code, settings and outputs are as run %s left them for %s "
             "(orchestration.skip_unchanged; delete %s to force a run)", task_id, since,
             memo_entry.key["date"], memo_entry.path)
    return True


def record_memo(cfg: Config, memo_entry, run_id: str) -> None:
    """Record a successful Spark task's memo, so an unchanged rerun of it is skipped."""
    from c360 import memo

    memo.record(cfg, memo_entry, run_id)


def job_path(job: str) -> str:
    """The file spark-submit runs for job module `job` (jobs/<job>.py)."""
    return str(JOBS_FOLDER / f"{job}.py")


def table_uri(cfg: Config, name: str) -> str:
    """The URI of a table's Delta location, the key of its Airflow Asset (file:///... locally)."""
    layer, short = name.split(".", 1)
    location = f"{cfg.path(cfg.lakehouse.root).rstrip('/')}/{layer}/{short}"
    return location if "://" in location else Path(location).as_uri()


def spark_submit_conf(cfg: Config) -> dict[str, str]:
    """Every Spark setting a job needs from spark-submit: the factory's settings plus the lineage listener."""
    from c360 import lineage
    from c360.spark import session_settings

    if cfg.lineage.enabled and "://" not in cfg.lineage.events:
        # The listener's file transport appends to the file but does not create its folder.
        lineage.events_dir(cfg).mkdir(parents=True, exist_ok=True)
    return {**session_settings(cfg), **lineage.spark_settings(cfg)}


def job_env(master: str, app_name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a spark-submit: the connection's master wins over conf, Python is this venv's."""
    environ = os.environ if environ is None else environ
    env = {
        # The job's SparkSession builder sets the master again from conf; make it the one
        # spark-submit was given, so the Airflow connection decides where jobs run.
        "C360__SPARK__MASTER": master,
        # Per-job application names keep Spark UIs and OpenLineage job names apart.
        "C360__SPARK__APP_NAME": app_name,
    }
    for var in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        env[var] = environ.get(var) or sys.executable
    return env


def permanent_failure(exit_code: int | None) -> bool:
    """Whether a job's exit code names a user or data error, which retrying the same input cannot fix."""
    return exit_code in PERMANENT_EXIT_CODES


def submit_exit_code(message: str) -> int | None:
    """The exit code in SparkSubmitHook's failure message ("... Error code is: 4."), if it names one."""
    match = _HOOK_EXIT_CODE.search(message)
    return int(match.group(1)) if match else None


def error_report(output: str) -> str | None:
    """The job's own account of a user or data error (a failed gate's GX summary) in its output, else None."""
    start = output.rfind(_ERROR_MARKER)
    if start < 0:
        return None
    return output[start + len(_ERROR_MARKER):].strip() or None


# ---- landing ------------------------------------------------------------------------------

def landing_status(cfg: Config, run_date: dt.date) -> tuple[list[str], list[str]]:
    """(feeds with an export for `run_date`, feeds still missing one) under the landing root."""
    from c360.catalog import load_catalog

    root = cfg.path(cfg.lakehouse.landing).rstrip("/")
    present, missing = [], []
    for key, feed in sorted(load_catalog(cfg).feeds.items()):
        folder = f"{root}/{feed.system}/{feed.feed}/date={run_date.isoformat()}"
        (present if _has_files(folder) else missing).append(key)
    return present, missing


def _has_files(folder: str) -> bool:
    if "://" not in folder:
        path = Path(folder)
        return path.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in path.iterdir())
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(re.sub(r"^s3[an]://", "s3://", folder))
    infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True))
    return any(i.type == fs.FileType.File for i in infos)


def demo_params(cfg: Config):
    """The synthetic bank conf describes (c360.datagen.DatagenParams)."""
    import dataclasses

    from c360.datagen import DatagenParams

    return DatagenParams(**{f.name: getattr(cfg.datagen, f.name) for f in dataclasses.fields(DatagenParams)})


def _demo_bank_stale(cfg: Config) -> bool:
    """Whether the generated bank on disk was made with other parameters than conf's (e.g. another size)."""
    manifest = Path(cfg.path(cfg.lakehouse.truth)) / "manifest.json"
    if not manifest.exists():
        return True
    wanted = demo_params(cfg)
    recorded = json.loads(manifest.read_text(encoding="utf-8")).get("params", {})
    return recorded != {**wanted.__dict__, "start_date": wanted.start_date.isoformat()}


def generate_or_land(cfg: Config, run_date: dt.date) -> bool:
    """True once every feed's export for `run_date` has landed; in demo mode generate the bank first if needed."""
    present, missing = landing_status(cfg, run_date)
    if not missing and not (cfg.orchestration.demo and _demo_bank_stale(cfg)):
        log.info("landing %s: all %d feeds have landed", run_date, len(present))
        return True
    if not cfg.orchestration.demo:
        log.info("landing %s: waiting for %d feeds: %s", run_date, len(missing), ", ".join(missing))
        return False
    from c360.datagen import generate_bank

    params = demo_params(cfg)
    last = params.start_date + dt.timedelta(days=params.days - 1)
    if not params.start_date <= run_date <= last:
        raise UserError(f"demo mode: the synthetic bank covers {params.start_date}..{last}, not {run_date}; "
                        "set datagen.start_date and datagen.days, or run with orchestration.demo: false")
    manifest = generate_bank(params, Path(cfg.path(cfg.lakehouse.landing)), Path(cfg.path(cfg.lakehouse.truth)),
                             cfg.conf_dir / "sources.yaml")
    log.info("demo: generated %d customers, %d landing files for %s..%s", params.customers,
             len(manifest["files"]), params.start_date, last)
    _, missing = landing_status(cfg, run_date)
    if missing:
        raise RuntimeError(f"demo: the generator wrote no export for {run_date} of {missing}")
    return True


# ---- the run log (Airflow callbacks) ------------------------------------------------------

def _utc(value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def rows_written(cfg: Config, tables: list[str], run_id: str, since: dt.datetime | None) -> tuple[int, list[str]]:
    """Rows the commits of `run_id` made since `since` in `tables`, and which of them it wrote."""
    from c360 import lineage

    since_ms = int(since.timestamp() * 1000) if since else 0
    total, written = 0, []
    for name in tables:
        commits = [c for c in lineage.table_history(cfg, name, cfg.maintenance.history_versions)
                   if lineage.commit_run(c).get("run_id") == run_id and int(c["timestamp"]) >= since_ms]
        if commits:
            written.append(name)
            total += sum(lineage.rows_of_commit(c) for c in commits)
    return total, written


def _row(cfg: Config, *, dag_id: str, run_id: str, task_id: str, try_number: int, logical_date, state: str,
         started_at, tables: list[str], error: str | None) -> dict:
    """One run-log row; rows written are read from the Delta commits the run made since it started."""
    now = dt.datetime.now(dt.timezone.utc)
    started = _utc(started_at) or now
    rows, written = rows_written(cfg, tables, run_id, started)
    return {
        "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "try_number": try_number,
        "logical_date": _utc(logical_date), "state": state, "started_at": started, "ended_at": now,
        "duration_s": round((now - started).total_seconds(), 3), "rows_written": rows,
        "tables_written": ",".join(written), "error": error, "recorded_at": now,
    }


def _error_text(context: Mapping) -> str | None:
    """What went wrong, as a task log would say it (the GX summary for a failed gate), capped in size."""
    exc = context.get("exception")
    if exc is None:
        reason = context.get("reason")
        return str(reason) if reason else None
    text = str(exc)
    return (error_report(text) or text)[-4000:]


def append_run_log(cfg: Config, rows: list[dict]) -> None:
    """Append rows to ops.run_log with delta-rs (no JVM in a callback), creating the table from the catalog."""
    from c360 import rows as delta_rows

    delta_rows.append(cfg, RUN_LOG, rows, job="run_log", run_id=rows[0]["run_id"])


def _record(build: Callable[[Config], dict], what: str) -> None:
    """Build and append one run-log row; a callback must never fail or hide the task's own outcome."""
    try:
        cfg = load_config()
        row = build(cfg)
        append_run_log(cfg, [row])
        log.info("run log: %s %s %s in %.1fs, %d rows written", what, row["task_id"], row["state"],
                 row["duration_s"], row["rows_written"])
    except Exception:
        log.exception("run log: could not record %s", what)


def _task_tables(cfg: Config, context: Mapping) -> list[str]:
    """Catalog tables the task publishes: the names of its outlet Assets."""
    from c360.catalog import load_catalog

    known = load_catalog(cfg).tables
    outlets = getattr(context.get("task"), "outlets", None) or []
    return [o.name for o in outlets if getattr(o, "name", None) in known]


def _record_task(context: Mapping, state: str) -> None:
    ti = context["ti"]
    dag_run = context.get("dag_run")
    _record(lambda cfg: _row(
        cfg, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, try_number=int(ti.try_number or 0),
        logical_date=getattr(dag_run, "logical_date", None), state=state, started_at=ti.start_date,
        tables=_task_tables(cfg, context), error=_error_text(context) if state != "success" else None,
    ), "task")


def on_task_success(context: Mapping) -> None:
    """Airflow on_success_callback: append the task's run-log row."""
    _record_task(context, "success")


def on_task_failure(context: Mapping) -> None:
    """Airflow on_failure_callback: append the task's run-log row with the error (the GX summary for a gate)."""
    _record_task(context, "failed")


def on_task_retry(context: Mapping) -> None:
    """Airflow on_retry_callback: append the failed try, which will be retried."""
    _record_task(context, "up_for_retry")


def _run_started(dag_run) -> dt.datetime | None:
    """When a DAG run really started: `airflow dags test` sets start_date to the logical date, run_after to now."""
    stamps = [_utc(getattr(dag_run, a, None)) for a in ("start_date", "run_after")]
    return max((s for s in stamps if s is not None), default=None)


def _record_dag(context: Mapping, state: str) -> None:
    dag_run = context["dag_run"]

    def build(cfg: Config) -> dict:
        from c360.catalog import load_catalog

        return _row(cfg, dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=DAG_RUN_TASK, try_number=0,
                    logical_date=dag_run.logical_date, state=state, started_at=_run_started(dag_run),
                    tables=sorted(load_catalog(cfg).tables), error=_error_text(context) if state != "success" else None)

    _record(build, "dag run")


def on_dag_success(context: Mapping) -> None:
    """DAG on_success_callback: append the run's row (task_id "-") with all rows it wrote."""
    _record_dag(context, "success")


def on_dag_failure(context: Mapping) -> None:
    """DAG on_failure_callback: append the run's row with the reason it failed."""
    _record_dag(context, "failed")


# ---- running DAGs on a laptop (airflow dags test) -----------------------------------------

def only_tasks_pattern(task_ids: list[str]) -> str:
    """A --mark-success-pattern that marks every task except `task_ids` successful without running it."""
    alternatives = "|".join(re.escape(t) for t in task_ids)
    return rf"(?!(?:{alternatives})$).*"


def dags_test(cfg: Config, logical_date: dt.date, *, dag_id: str = DAILY_DAG, tasks: list[str] | None = None,
              env: Mapping[str, str] | None = None, output=None, on_line: Callable[[str], None] | None = None) -> int:
    """Run one DAG run in-process with `airflow dags test` (no scheduler); returns its exit code."""
    env = dict(env or airflow_env(cfg))
    ensure_airflow_db(cfg, env)
    cmd = [_airflow_bin(), "dags", "test", dag_id, logical_date.isoformat()]
    if tasks:
        cmd += ["--mark-success-pattern", only_tasks_pattern(tasks)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in proc.stdout:
        if output is not None:
            output.write(line)
        if on_line is not None:
            on_line(line.rstrip("\n"))
    return proc.wait()


def progress_printer(out: Callable[[str], None]) -> Callable[[str], None]:
    """A dags_test line handler that prints one line per task start and finish, with the time it took."""
    started: dict[str, float] = {}

    def handle(line: str) -> None:
        if "[DAG TEST] starting task_id=" in line:
            task_id = line.split("task_id=", 1)[1].split()[0]
            started[task_id] = time.perf_counter()
        elif "[DAG TEST] end task task_id=" in line:
            task_id = line.split("task_id=", 1)[1].split()[0]
            seconds = time.perf_counter() - started.pop(task_id, time.perf_counter())
            out(f"    {task_id:28} done in {seconds:5.0f}s")

    return handle


# Lines of a `dags test` log that say why a run failed: the job's own error line, a Python
# traceback, the JVM running out of memory, Airflow's verdict on a task.
_FAILURE_MARKS = (_ERROR_MARKER, "Traceback (most recent call last)", "OutOfMemoryError", "Error code is:",
                  "Task failed", "exit code", "Killed")
# The message inside a structured Airflow log line: `<time> [info     ] <message> [<logger>] loc=...`.
_LOG_MESSAGE = re.compile(r"^\S+\s+\[\s*\w+\s*\]\s(.*?)(?:\s+\[[\w.]+\](?:\s+\S+=\S+)*)?$")


def failure_excerpt(log_path: Path, limit: int = 40) -> list[str]:
    """The lines of a failed run's log that say why (each with the few lines after it), at most `limit`."""
    lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
    messages = [(_LOG_MESSAGE.match(line) or re.match(r"(.*)", line)).group(1) for line in lines]
    keep: set[int] = set()
    for i, message in enumerate(messages):
        if any(mark in message for mark in _FAILURE_MARKS):
            keep.update(range(i, min(i + 6, len(messages))))
    return [messages[i][:300] for i in sorted(keep)][-limit:]


def backfill(cfg: Config, start: dt.date, end: dt.date, *, dag_id: str = DAILY_DAG,
             out: Callable[[str], None] = lambda line: None, log_dir: Path | None = None,
             environ: Mapping[str, str] | None = None) -> list[tuple[dt.date, int]]:
    """Run `dag_id` for every date from `start` to `end` in order, stopping at the first failed date."""
    env = airflow_env(cfg, environ)
    log_dir = log_dir or airflow_home(cfg) / "runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = []
    day = start
    while day <= end:
        path = log_dir / f"{dag_id}_{day.isoformat()}.log"
        out(f"{dag_id} {day}: running (log: {path})")
        with open(path, "w", encoding="utf-8") as fh:
            code = dags_test(cfg, day, dag_id=dag_id, env=env, output=fh, on_line=progress_printer(out))
        results.append((day, code))
        out(f"{dag_id} {day}: {'success' if code == 0 else 'FAILED, see ' + str(path)}")
        if code != 0:
            for line in failure_excerpt(path):
                out(f"    | {line}")
            break
        day += dt.timedelta(days=1)
    return results


def _standalone(cfg: Config) -> int:
    env = airflow_env(cfg)
    ensure_airflow_db(cfg, env)
    # A laptop UI: no login page, every user is admin (never set this on a shared server).
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    return subprocess.call([_airflow_bin(), "standalone"], env=env)


def _print_env(cfg: Config) -> int:
    import shlex

    env = airflow_env(cfg, environ={})
    env.pop("PATH")
    for key, value in sorted(env.items()):
        sys.stdout.write(f"export {key}={shlex.quote(value)}\n")
    sys.stdout.write(f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m c360.orchestration env|db|run|backfill|standalone`: Airflow on a laptop, same DAGs as a cluster."""
    parser = argparse.ArgumentParser(prog="python -m c360.orchestration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", help="config overlay (default: $C360_ENV or local)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("env", help="print `export` lines for plain airflow commands (eval \"$(...)\")")
    sub.add_parser("db", help="create or upgrade the SQLite metadata database")
    run = sub.add_parser("run", help="run (or rerun) a DAG for one logical date via airflow dags test")
    run.add_argument("date", type=dt.date.fromisoformat)
    run.add_argument("--dag", default=DAILY_DAG)
    run.add_argument("--task", action="append", help="rerun only this task id (repeatable), e.g. silver.conform")
    fill = sub.add_parser("backfill", help="run a DAG for each date from FROM to TO, in order")
    fill.add_argument("start", type=dt.date.fromisoformat, metavar="FROM")
    fill.add_argument("end", type=dt.date.fromisoformat, metavar="TO")
    fill.add_argument("--dag", default=DAILY_DAG)
    sub.add_parser("standalone", help="start the Airflow UI, scheduler and API server (airflow standalone)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.env)
    if args.command == "env":
        return _print_env(cfg)
    if args.command == "db":
        sys.stdout.write(f"AIRFLOW_HOME={ensure_airflow_db(cfg, airflow_env(cfg))}\n")
        return 0
    if args.command == "standalone":
        return _standalone(cfg)
    if args.command == "run":
        return dags_test(cfg, args.date, dag_id=args.dag, tasks=args.task, output=sys.stdout)
    results = backfill(cfg, args.start, args.end, dag_id=args.dag, out=lambda line: sys.stdout.write(line + "\n"))
    return max((code for _, code in results), default=0)


if __name__ == "__main__":
    from c360.entry import run_main

    raise SystemExit(run_main(main))
