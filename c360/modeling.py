"""Model training and registry actions for the lakehouse: specs from conf, data from Delta, MLflow from conf.

The models package trains, gates and explains on pandas frames; this module decides what it sees:
the spec's feature table (and label table) read with delta-rs at their current versions (no JVM),
joined point in time on entity and as-of date, refused when a feature may not serve the model's
purpose, and cut to the customers whose consent allows the purpose on each as-of date. Registry
actions are appended to ops.model_events (who, when, why).
"""

from __future__ import annotations

import getpass
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from c360 import rows
from c360.config import Config
from c360.errors import DataError, InsufficientDataError, UserError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
JOB = "train_model"
EVENTS = "ops.model_events"
CONSENT_COLUMN = "purposes_allowed"


def _resolve(cfg: Config, text: str) -> str:
    return text.replace("{root}", cfg.path(cfg.lakehouse.root).rstrip("/"))


def model_registry(cfg: Config):
    """The MLflow-backed model registry of this configuration."""
    from models.registry import ModelRegistry

    uri = _resolve(cfg, cfg.models.tracking_uri)
    location = _resolve(cfg, cfg.models.artifact_location)
    artifacts = location if "://" in location else Path(location).resolve().as_uri()
    return ModelRegistry(uri, artifacts)


def load_spec(cfg: Config, name: str | None = None, path: str | None = None):
    """A model spec: by name from conf/models.yaml, or the one in a spec file."""
    from models.spec import load_spec_file, load_specs

    if path:
        return load_spec_file(path)
    specs = load_specs(Path(cfg.conf_dir) / "models.yaml")
    if name not in specs:
        raise UserError(f"no model {name!r} in {cfg.conf_dir}/models.yaml (known: {', '.join(sorted(specs))})")
    return specs[name]


def model_names(cfg: Config) -> list[str]:
    """Names of conf/models.yaml's models, read with YAML alone (DAG files parse it)."""
    import yaml

    data = yaml.safe_load((Path(cfg.conf_dir) / "models.yaml").read_text(encoding="utf-8")) or {}
    return sorted((data.get("models") or {}).keys())


def scorable(cfg: Config) -> list[str]:
    """Models that scoring would use now: a champion exists and neither the model nor its purpose is disabled."""
    registry = model_registry(cfg)
    usable = []
    for name in model_names(cfg):
        ok, why = registry.is_usable(name, load_spec(cfg, name).purpose)
        if ok:
            usable.append(name)
        else:
            log.info("%s: not scored: %s", name, why)
    return usable


def actor() -> str:
    """Who is acting: $C360_ACTOR (a scheduler sets it), else the login name."""
    import os

    return os.environ.get("C360_ACTOR") or getpass.getuser()


def audit_sink(cfg: Config, run_id: str):
    """A callable that appends one registry event to ops.model_events."""
    def record(event: dict) -> None:
        rows.append(cfg, EVENTS, [{**{k: event.get(k) for k in ("at", "model", "purpose", "action", "reason",
                                                                   "actor")},
                                   "version": None if event.get("version") is None else str(event["version"]),
                                   "run_id": run_id}], job=JOB, run_id=run_id)
    return record


def _location(cfg: Config, table: str) -> tuple[str, bool]:
    """Storage location of a catalog table name, or the path/URI given; and whether it is the bank's."""
    from c360 import lineage
    from c360.catalog import load_catalog

    catalog = load_catalog(cfg).tables
    if table in catalog:
        return lineage.delta_uri(catalog[table].location(cfg)), True
    return table, False


def training_frame(cfg: Config, spec) -> tuple[pd.DataFrame, list, list[str]]:
    """The spec's training set: (frame, the DatasetRefs it came from, notes for the model card)."""
    from c360 import features
    from models.data import load_delta

    if not spec.feature_table:
        raise UserError(f"model {spec.name!r}: feature_table is missing (a catalog table or a Delta path)")
    uri, in_catalog = _location(cfg, spec.feature_table)
    notes = []
    registry = features.load_registry(cfg.conf_dir)
    registry.check_purpose(list(spec.features), spec.purpose, spec.feature_table)
    label_table = spec.label.table
    wanted = list(dict.fromkeys(c for c in spec.required_columns() if not (label_table and c == spec.label.column)))
    try:
        frame, ref = load_delta(spec.feature_table, uri, columns=None)
    except Exception as exc:  # delta-rs raises its own error types for a missing or unreadable table
        raise UserError(f"model {spec.name!r}: cannot read feature table {spec.feature_table} ({uri}): {exc}") from None
    has_consent = CONSENT_COLUMN in frame.columns
    frame = frame[[c for c in frame.columns if c in wanted or c == CONSENT_COLUMN]]
    inputs = [ref]
    if label_table:
        label_uri, _ = _location(cfg, label_table)
        picked = [c for c, _ in spec.label.where]
        labels, label_ref = load_delta(label_table, label_uri,
                                       columns=list(dict.fromkeys([spec.entity, spec.as_of, spec.label.column, *picked])))
        for column, value in spec.label.where:
            labels = labels[labels[column] == value]
        labels = labels.drop(columns=[c for c in picked if c not in (spec.entity, spec.as_of, spec.label.column)])
        frame = frame.merge(labels, on=[spec.entity, spec.as_of], how="inner", validate="one_to_one")
        inputs.append(label_ref)
    if has_consent:
        allowed = frame[CONSENT_COLUMN].map(lambda purposes: spec.purpose in list(purposes if purposes is not None
                                                                                  else []))
        log.info("%s: %d of %d rows have consent for purpose %s", spec.name, int(allowed.sum()), len(frame),
                 spec.purpose)
        notes.append(f"{int((~allowed).sum())} of {len(frame)} customer-dates left out: no consent for "
                     f"{spec.purpose} on the as-of date.")
        frame = frame[allowed].drop(columns=[CONSENT_COLUMN])
    elif in_catalog:
        raise DataError(f"{spec.feature_table} has no {CONSENT_COLUMN} column: consent cannot be enforced")
    else:
        notes.append(f"{spec.feature_table} is not a lakehouse table and carries no consent column: consent was "
                     "not checked; its owner answers for the data's lawful use.")
    if frame.empty:
        raise InsufficientDataError(f"model {spec.name!r}: the training set is empty (features {ref.tag}"
                        + (f", labels {inputs[-1].tag}" if label_table else "") + ")")
    return frame.reset_index(drop=True), inputs, notes


def train(cfg: Config, spec, run_id: str):
    """Train the spec's candidates on its training set, register the best and gate it; returns the outcome."""
    from models.train import train_and_gate

    frame, inputs, notes = training_frame(cfg, spec)
    notes.append("Trained on the synthetic bank's data (c360.datagen): figures say how the pipeline works, not how "
                 "a model would do on a real bank.")
    for ref in inputs:
        log.info("%s: input %s = %s (%d rows)", spec.name, ref.name, ref.tag, ref.rows)
    return train_and_gate(spec, frame, registry=model_registry(cfg), inputs=inputs,
                          tags={"c360.run_id": run_id, "c360.git_sha": cfg.run.git_sha, "c360.env": cfg.env},
                          actor=actor(), audit=audit_sink(cfg, run_id), notes=notes)
