"""Where a job's time goes: named phases, each with its wall seconds and the Spark jobs it ran.

A job opens phases (`with profile.phase("write", table="silver.accounts"):`); each phase tags the Spark
jobs it starts with a job group, so Spark's own status store says afterwards how many jobs each phase
ran and how long they took. Phases nest: a gate's "suite" inside a write's "gate" is reported under
`gate/suite`. A phase's Spark jobs are its own (those of phases nested in it are theirs), and the
time it spends outside them (Python, GX, Delta log work on the driver, nested phases) is what is
left of its wall seconds.

`Profile.save` writes `<lakehouse>/_profiles/<run_id>/<job>.json`; `c360 profile RUN_ID` prints them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from c360.config import Config

log = logging.getLogger(__name__)
_GROUP_PREFIX = "c360-phase:"



def _covered_ms(intervals: list[tuple[int, int]]) -> int:
    """Milliseconds covered by the union of (start, end) intervals: jobs of one phase can run at once
    (a query's broadcast or subquery jobs), and time in Spark must not exceed the phase's wall time."""
    covered, end = 0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            covered += stop - start
            end = stop
        elif stop > end:
            covered += stop - end
            end = stop
    return covered

@dataclass
class Phase:
    """One timed span of a job: its path (outer/inner), table (if any) and wall seconds."""

    path: str
    table: str | None
    seconds: float = 0.0
    spark_jobs: int = 0
    spark_seconds: float = 0.0
    window_ms: tuple[int, int] = (0, 0)


@dataclass
class Profile:
    """The phases of one job run, in the order they started."""

    job: str
    run_id: str
    spark: object = None
    phases: list[Phase] = field(default_factory=list)
    _stack: list[str] = field(default_factory=list)
    _started: float = field(default_factory=time.perf_counter)
    _started_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat())
    # Part of every job group id: an earlier profile in the same session numbers its phases alike.
    _token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @contextlib.contextmanager
    def phase(self, name: str, table: str | None = None) -> Iterator[Phase]:
        """Time the block as phase `name` (nested under the open phase) and tag its Spark jobs."""
        path = "/".join([*self._stack, name])
        entry = Phase(path=path, table=table)
        self.phases.append(entry)
        index = len(self.phases) - 1
        previous_group = self._set_group(index)
        self._stack.append(name)
        started, started_ms = time.perf_counter(), int(time.time() * 1000)
        try:
            yield entry
        finally:
            entry.seconds = time.perf_counter() - started
            # Jobs can outlive the phase that tagged them (async jobs inherit the thread's group), so
            # only the part of a job inside the phase's own window counts as its time in Spark.
            entry.window_ms = (started_ms, int(time.time() * 1000))
            self._stack.pop()
            self._restore_group(previous_group)

    def _set_group(self, index: int) -> str | None:
        if self.spark is None:
            return None
        context = self.spark.sparkContext
        previous = context.getLocalProperty("spark.jobGroup.id")
        context.setJobGroup(f"{_GROUP_PREFIX}{self._token}:{index}", self.phases[index].path, interruptOnCancel=False)
        return previous

    def _restore_group(self, previous: str | None) -> None:
        if self.spark is None:
            return
        context = self.spark.sparkContext
        if previous is None:
            context.setLocalProperty("spark.jobGroup.id", None)
            context.setLocalProperty("spark.job.description", None)
        else:
            context.setLocalProperty("spark.jobGroup.id", previous)

    def collect_spark_jobs(self) -> None:
        """Fill each phase's Spark job count and seconds from Spark's status store."""
        if self.spark is None:
            return
        sc = self.spark.sparkContext._jsc.sc()
        # Job-end events reach the status store through the listener bus, a moment after the action returns.
        sc.listenerBus().waitUntilEmpty()
        jobs = sc.statusStore().jobsList(None)
        spans: dict[int, list[tuple[int, int]]] = {}
        for i in range(jobs.length()):
            job = jobs.apply(i)
            group = job.jobGroup()
            mine = f"{_GROUP_PREFIX}{self._token}:"
            if not group.isDefined() or not str(group.get()).startswith(mine):
                continue
            index = int(str(group.get())[len(mine):])
            if index >= len(self.phases):
                continue
            submitted, completed = job.submissionTime(), job.completionTime()
            if not (submitted.isDefined() and completed.isDefined()):
                continue
            low, high = self.phases[index].window_ms
            start, stop = max(submitted.get().getTime(), low), min(completed.get().getTime(), high)
            if stop >= start:
                self.phases[index].spark_jobs += 1
                spans.setdefault(index, []).append((start, stop))
        for index, intervals in spans.items():
            phase = self.phases[index]
            phase.spark_seconds = min(_covered_ms(intervals) / 1000.0, phase.seconds)

    def to_dict(self) -> dict:
        """The profile as JSON-ready data: total seconds and one entry per phase."""
        return {"job": self.job, "run_id": self.run_id, "started_at": self._started_at,
                "seconds": round(time.perf_counter() - self._started, 3),
                "phases": [{"phase": p.path, "table": p.table, "seconds": round(p.seconds, 3),
                            "spark_jobs": p.spark_jobs, "spark_seconds": round(p.spark_seconds, 3)}
                           for p in self.phases]}

    def save(self, cfg: Config) -> Path:
        """Write the profile beside the other runs' profiles; returns the file."""
        self.collect_spark_jobs()
        path = profile_dir(cfg, self.run_id) / f"{self.job}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        scratch.replace(path)
        log.info("profile of %s written to %s", self.job, path)
        return path


_CURRENT: list[Profile] = []


def start(job: str, run_id: str, spark=None) -> Profile:
    """Begin the profile of a job run; `current()` returns it until the next start."""
    profile = Profile(job=job, run_id=run_id, spark=spark)
    _CURRENT[:] = [profile]
    return profile


def current() -> Profile:
    """The profile of the running job (a throw-away one when no job started one, e.g. in tests)."""
    return _CURRENT[0] if _CURRENT else Profile(job="unprofiled", run_id="none")


def profile_dir(cfg: Config, run_id: str) -> Path:
    """Folder of one run's profiles (run ids are made file-name safe)."""
    return Path(cfg.path(cfg.lakehouse.root)) / "_profiles" / re.sub(r"[^\w.:+-]", "_", run_id)


def load(cfg: Config, run_id: str) -> list[dict]:
    """Every job profile of a run, in the order the jobs ran."""
    folder = profile_dir(cfg, run_id)
    if not folder.is_dir():
        return []
    profiles = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")]
    return sorted(profiles, key=lambda p: p.get("started_at", ""))


def render(profiles: list[dict]) -> str:
    """A table per job: phase, table, wall seconds, Spark jobs and their seconds, and what is left outside Spark."""
    lines = []
    for prof in profiles:
        lines.append(f"{prof['job']}  (run {prof['run_id']}): {prof['seconds']:.1f} s")
        lines.append(f"  {'phase':34} {'table':32} {'seconds':>8} {'spark jobs':>10} {'in spark':>9} {'outside':>8}")
        for p in prof["phases"]:
            depth = p["phase"].count("/")
            name = "  " * depth + p["phase"].rsplit("/", 1)[-1]
            outside = max(p["seconds"] - p["spark_seconds"], 0.0)
            lines.append(f"  {name:34} {(p['table'] or ''):32} {p['seconds']:8.2f} {p['spark_jobs']:10d} "
                         f"{p['spark_seconds']:9.2f} {outside:8.2f}")
    return "\n".join(lines)
