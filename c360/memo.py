"""Task memos: a DAG task whose inputs, code, settings and outputs are exactly those its last success
left behind is not run again (no JVM is started); every other run goes ahead as before.

A memo is written after a task succeeds: the job, its date and arguments, a digest of the code and
effective configuration, the Delta version of every table it reads and of every table it writes,
and for landing data the files of its date (name, size, modification time). Before the next try of
the same task and date, the same facts are read again, JVM-free (delta-rs and file listings). Only
when all of them are equal is the task skipped, as a build tool skips an up-to-date target. Any new
commit to an input or an output (a manual fix, a restore, OPTIMIZE), any code, conf or suite edit,
a new landing file or different arguments make it run. The memo is an optimisation only: deleting
`<lakehouse>/_memo` loses nothing.

What a job reads is taken by layer, wider than it needs rather than narrower: a memo that misses an
input would skip a run that had work to do, one that lists too many only runs more often.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from c360.catalog import load_catalog
from c360.config import PROJECT_ROOT, Config

log = logging.getLogger(__name__)
# Files whose content decides what a job does: the code, the suites and the conf folder.
_CODE_FOLDERS = ("c360", "jobs", "expectations")


@dataclass(frozen=True)
class Memo:
    """What a task's run depends on (key, taken before it) and what it writes (tables and files), whose
    state after the run must still hold for a later try to be skipped."""

    path: Path
    key: dict
    outputs: tuple[str, ...]
    output_files: tuple[str, ...] = ()


def _tree_digest(folders: tuple[str, ...]) -> str:
    """SHA-256 over every file's relative path and bytes under `folders` (caches and hidden files aside).

    Not cached: a long-lived worker must see an edit made after it started (a few ms per task)."""
    digest = hashlib.sha256()
    for folder in folders:
        root = Path(folder)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root)
            if any(part.startswith((".", "__pycache__")) for part in relative.parts) or path.suffix == ".pyc":
                continue
            digest.update(f"{folder}/{relative}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def code_digest(cfg: Config) -> str:
    """A digest of the code, the suites, the conf folder and the effective configuration."""
    folders = tuple(str(PROJECT_ROOT / f) for f in _CODE_FOLDERS) + (str(cfg.conf_dir),)
    settings = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(f"{_tree_digest(folders)}\0{settings}".encode()).hexdigest()


def reads_of(cfg: Config, job: str, outputs: list[str], args: list[str]) -> list[str]:
    """The catalog tables job `job` may read besides its own outputs, by layer."""
    tables = load_catalog(cfg).tables

    def layer(name: str) -> list[str]:
        return [t for t in tables if t.startswith(f"{name}.")]

    if job == "quality_check":
        from c360 import quality

        # The tables it validates and those their suites' queries read; identity's tables, written
        # after it, are not among them.
        checked = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--table"] or layer("silver")
        reads = [*checked, *(t for c in checked for t in quality.referenced_tables(quality.load_suite(c)))]
    else:
        reads = {"bronze_ingest": layer("bronze"), "silver_conform": layer("bronze"),
                 "resolve_identity": layer("silver"), "publish_gold": layer("silver") + layer("gold"),
                 "build_features": layer("silver") + layer("features")}.get(job)
    if reads is None:
        raise KeyError(f"no memo rule for job {job!r}")
    # A job's own outputs are compared after its run instead (its commits change them).
    return sorted(set(reads) & set(tables) - set(outputs) - {"ops.run_log"})


def _versions(cfg: Config, names: list[str]) -> dict[str, int | None]:
    """Current Delta version of each table (None: not created yet), read with delta-rs."""
    from c360 import lineage

    versions = {}
    for name in names:
        table = lineage.open_table(cfg, name)
        versions[name] = None if table is None else table.version()
    return versions


def _files(cfg: Config, job: str, day: dt.date) -> list[list]:
    """The landing files of `day` for the bronze job (name, size, mtime); other jobs read none."""
    from c360 import landing

    if job != "bronze_ingest":
        return []
    root = cfg.path(cfg.lakehouse.landing)
    listed = []
    for relative, path, size in landing.list_files(cfg, day):
        # A rewritten file of the same size still changes its modification time; object stores
        # have no local stat, there size and name must do (and the ingest's own check decides).
        mtime = os.stat(path).st_mtime_ns if "://" not in root else None
        listed.append([relative, size, mtime])
    return listed


def _listing(paths: list[Path]) -> list[list]:
    """(path, size, mtime) of each file, and of every file under each folder, of `paths`."""
    found = []
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []
        found += [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    return found


def _side_files(cfg: Config, job: str, reads: list[str]) -> tuple[list[Path], list[Path]]:
    """Files outside Delta a job reads, and those it writes: identity reads steward overrides and
    reads and writes its model store; the quality task writes the pass records of what it validates."""
    if job == "resolve_identity":
        from c360.identity.conf import load_identity_conf

        conf = load_identity_conf(cfg)
        return [Path(conf.overrides.file)], [Path(conf.model.store)]
    if job == "quality_check":
        passed = Path(cfg.path(cfg.lakehouse.quality)) / "passed"
        return [], [passed / f"{name}.json" for name in reads]
    return [], []


def _state(cfg: Config, memo: Memo) -> dict:
    """What the memo's outputs hold now: table versions and file listings."""
    return {"tables": _versions(cfg, list(memo.outputs)), "files": _listing([Path(p) for p in memo.output_files])}


def memo_for(cfg: Config, job: str, day: dt.date, args: list[str], outputs: list[str]) -> Memo:
    """The memo a run of `job` for `day` with `args` would write, its key taken now (before the run)."""
    reads = reads_of(cfg, job, outputs, args)
    read_files, written_files = _side_files(cfg, job, reads)
    key = {"job": job, "date": day.isoformat(), "args": list(args), "code": code_digest(cfg),
           "reads": _versions(cfg, reads), "landing": _files(cfg, job, day), "files": _listing(read_files)}
    args_digest = hashlib.sha256(json.dumps(list(args)).encode()).hexdigest()[:12]
    path = Path(cfg.path(cfg.lakehouse.root)) / "_memo" / job / f"{day.isoformat()}_{args_digest}.json"
    return Memo(path=path, key=key, outputs=tuple(sorted(outputs)), output_files=tuple(str(p) for p in written_files))


def unchanged_since(cfg: Config, memo: Memo) -> str | None:
    """The run id of the last success with this memo's key whose outputs are still as it left them, else None."""
    if not cfg.orchestration.skip_unchanged or not memo.path.is_file():
        return None
    try:
        stored = json.loads(memo.path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("key") != memo.key or stored.get("outputs") != _state(cfg, memo):
        return None
    return stored.get("run_id")


def record(cfg: Config, memo: Memo, run_id: str) -> None:
    """Write the memo of a successful run: its key (taken before the run) and its outputs' state now."""
    if not cfg.orchestration.skip_unchanged:
        return
    entry = {"key": memo.key, "outputs": _state(cfg, memo), "run_id": run_id,
             "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    memo.path.parent.mkdir(parents=True, exist_ok=True)
    scratch = memo.path.with_suffix(".tmp")
    scratch.write_text(json.dumps(entry, indent=2, sort_keys=True), encoding="utf-8")
    scratch.replace(memo.path)
