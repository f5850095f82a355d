"""Versioned model store and run reports under the lakehouse root, plus MLflow logging of both."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from c360.identity.conf import IdentityConf

log = logging.getLogger(__name__)
_VERSION = re.compile(r"^v(\d{4,})$")


def _fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small text file through Hadoop's file system (local disk or object storage alike)."""
    fs, hadoop_path = _fs(spark, path)
    stream = fs.create(hadoop_path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def read_text(spark: SparkSession, path: str) -> str | None:
    """The text of a small file, or None when it does not exist."""
    fs, hadoop_path = _fs(spark, path)
    if not fs.exists(hadoop_path):
        return None
    jvm = spark.sparkContext._jvm
    stream = fs.open(hadoop_path)
    try:
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or folder exists."""
    fs, hadoop_path = _fs(spark, path)
    return bool(fs.exists(hadoop_path))


@dataclass(frozen=True)
class StoredModel:
    """A trained Splink model (its settings JSON as a dict) and the version it is stored under."""

    version: str
    settings: dict
    meta: dict


class ModelStore:
    """Trained models as <store>/vNNNN/model.json (+ meta.json); the highest version is the one in use."""

    def __init__(self, spark: SparkSession, root: str):
        self.spark, self.root = spark, root.rstrip("/")

    def versions(self) -> list[str]:
        """Stored versions, oldest first."""
        fs, hadoop_path = _fs(self.spark, self.root)
        if not fs.exists(hadoop_path):
            return []
        names = [str(s.getPath().getName()) for s in fs.listStatus(hadoop_path) if s.isDirectory()]
        return sorted((n for n in names if _VERSION.match(n)), key=lambda n: int(n[1:]))

    def latest(self) -> StoredModel | None:
        """The model in use, or None before the first training."""
        versions = self.versions()
        return self.load(versions[-1]) if versions else None

    def load(self, version: str) -> StoredModel:
        """A stored model by version ("v0003")."""
        text = read_text(self.spark, f"{self.root}/{version}/model.json")
        if text is None:
            raise FileNotFoundError(f"no model {version} under {self.root}")
        meta = json.loads(read_text(self.spark, f"{self.root}/{version}/meta.json") or "{}")
        return StoredModel(version, json.loads(text), meta)

    def save(self, settings: dict, meta: dict) -> StoredModel:
        """Store a newly trained model as the next version; meta.json is written last, marking it complete."""
        versions = self.versions()
        version = f"v{(int(versions[-1][1:]) + 1) if versions else 1:04d}"
        write_text(self.spark, f"{self.root}/{version}/model.json", json.dumps(settings, indent=2, sort_keys=True))
        write_text(self.spark, f"{self.root}/{version}/meta.json", json.dumps(meta, indent=2, sort_keys=True, default=str))
        log.info("identity: stored model %s under %s", version, self.root)
        return StoredModel(version, settings, meta)


def save_report(spark: SparkSession, conf: IdentityConf, run_id: str, run_date: dt.date, report: dict) -> str:
    """Keep a run's report as JSON beside the models: <store>/../runs/<run_date>/<run_id>.json."""
    safe = re.sub(r"[^\w.+-]", "_", run_id)
    path = f"{conf.model.store.rstrip('/').rsplit('/', 1)[0]}/runs/{run_date.isoformat()}/{safe}.json"
    write_text(spark, path, json.dumps(report, indent=2, sort_keys=True, default=str))
    return path


def _mlflow(conf: IdentityConf):
    import mlflow

    uri = conf.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(conf.mlflow.experiment)
    if experiment is None:
        location = conf.mlflow.artifact_location
        # A plain path would be taken relative to the working directory by some MLflow clients.
        artifacts = location if "://" in location else Path(location).resolve().as_uri()
        mlflow.create_experiment(conf.mlflow.experiment, artifact_location=artifacts)
    mlflow.set_experiment(conf.mlflow.experiment)
    return mlflow


def log_to_mlflow(conf: IdentityConf, run_name: str, params: dict[str, Any], metrics: dict[str, float],
                  artifacts: dict[str, str], tags: dict[str, str]) -> str:
    """One MLflow run with params, metrics and text artifacts (file name -> content); returns its run id."""
    mlflow = _mlflow(conf)
    with mlflow.start_run(run_name=run_name, tags=tags) as active:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in artifacts.items():
                path = Path(tmp) / name
                path.write_text(content, encoding="utf-8")
                mlflow.log_artifact(str(path))
        return active.info.run_id
