"""Shared fixtures: one local SparkSession for the whole run and a throw-away lakehouse config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from c360.config import Config, load_config
from c360.spark import get_spark


def make_config(root: Path, **overrides: str) -> Config:
    """A config whose lakehouse lives under `root`; `overrides` are C360__* style keys."""
    environ = {
        "C360__LAKEHOUSE__ROOT": str(root / "lakehouse"),
        "C360__LAKEHOUSE__LANDING": str(root / "landing"),
        "C360__LAKEHOUSE__TRUTH": str(root / "truth"),
        "C360__LAKEHOUSE__QUALITY": str(root / "quality"),
        # Two cores: local[2] uses both without oversubscribing the machine.
        "C360__SPARK__MASTER": "local[2]",
        # Test frames are tiny: one shuffle partition avoids scheduling empty tasks.
        "C360__SPARK__SHUFFLE_PARTITIONS": "1",
        # One JVM serves a whole test module. 3g once ran out of heap in the identity module: cached
        # joins held one 24-64 MB page each (now released, and pages are 2 MB in conf/local.yaml).
        # Two workers at 5g still leave half the machine's 24 GiB for the spark-submit jobs of the
        # Airflow tests, GX and the generator.
        "C360__SPARK__DRIVER_MEMORY": "5g",
        "C360__SPARK__LOG_LEVEL": "ERROR",
        **{f"C360__{k.upper()}": v for k, v in overrides.items()},
    }
    return load_config(env="local", environ={**{k: v for k, v in os.environ.items() if not k.startswith("C360__")}, **environ})


def airflow_bank_environ(lakehouse: Path, data: Path, start, days: int) -> dict[str, str]:
    """C360__* settings for a bank run through Airflow: a lakehouse (with its Airflow home and lineage)
    under `lakehouse`, landing files and truth under `data`; the Airflow processes and the spark-submit
    jobs see them too. The rest of the process environment is kept, other C360__/AIRFLOW* keys dropped."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("C360__", "AIRFLOW"))},
        "C360__LAKEHOUSE__ROOT": str(lakehouse / "lakehouse"), "C360__LAKEHOUSE__QUALITY": str(lakehouse / "quality"),
        "C360__LINEAGE__EVENTS": str(lakehouse / "lineage"),
        "C360__ORCHESTRATION__AIRFLOW_HOME": str(lakehouse / "airflow"),
        "C360__LAKEHOUSE__LANDING": str(data / "landing"), "C360__LAKEHOUSE__TRUTH": str(data / "truth"),
        # 300 customers, seed 7: the later dates change and add customer records (smaller banks
        # may see no life event that day), so silver has later versions to time-travel from.
        "C360__DATAGEN__CUSTOMERS": "300", "C360__DATAGEN__SEED": "7", "C360__DATAGEN__DAYS": str(days),
        "C360__DATAGEN__START_DATE": start.isoformat(), "C360__ORCHESTRATION__DEMO": "true",
        # A failing task fails the run now: retries would wait out the production backoff.
        "C360__ORCHESTRATION__RETRIES": "0",
        # As the shared session below: local[2] on two cores, one shuffle partition for tiny frames;
        # 2g leaves room for the test session's JVM beside a spark-submit job's.
        "C360__SPARK__MASTER": "local[2]", "C360__SPARK__SHUFFLE_PARTITIONS": "1",
        "C360__SPARK__DRIVER_MEMORY": "2g", "C360__SPARK__LOG_LEVEL": "ERROR",
    }


# Longest modules first: with `make test`'s two workers (--dist loadfile) each of these two starts
# at once on its own worker and the short modules fill in beside them.
_FIRST = ("test_pipeline_integration.py", "test_identity.py")


def pytest_collection_modifyitems(items) -> None:
    """Run the two long end-to-end modules first, in a stable order every worker agrees on."""
    rank = {name: i for i, name in enumerate(_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(_FIRST)))


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    """Root folder of the session-wide lakehouse."""
    return tmp_path_factory.mktemp("c360")


@pytest.fixture(scope="session")
def cfg(session_root) -> Config:
    """Config of the session-wide lakehouse."""
    return make_config(session_root)


@pytest.fixture(scope="session")
def spark(cfg, session_root):
    """One Delta-enabled local SparkSession (UI off, UTC, warehouse in a temp folder) for all tests."""
    session = get_spark(cfg, app_name="c360-tests", warehouse=str(session_root / "warehouse"))
    yield session
    session.stop()
