"""Model specs: one YAML mapping per model, loaded into frozen dataclasses and checked against a frame."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from c360.errors import InsufficientDataError, UserError

ALGORITHMS = ("logistic", "lightgbm")
METRICS = ("roc_auc", "pr_auc")
TOP_DECILE = "top_decile"
# Model names become registered-model and experiment names and metric prefixes.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class LabelSpec:
    """The 0/1 column to predict, in words what a 1 means, and where it lives when not in the feature table.

    `table`: a label table joined to the features on entity and as-of date (none: the feature table holds
    the label). `horizon_days`: the outcome window after the as-of date the label looks at. `where`: column =
    value pairs that pick this model's rows of a shared label table (e.g. one offered product).
    """

    column: str
    definition: str
    table: str | None = None
    horizon_days: int | None = None
    where: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SplitSpec:
    """Time-based split: the latest `holdout_dates` distinct as-of dates are the holdout; with `purge_days`,
    training dates closer than that to the first holdout date are left out, so no training label's outcome
    window overlaps the holdout's (set it to the label's horizon)."""

    holdout_dates: int = 1
    purge_days: int = 0


@dataclass(frozen=True)
class GateSpec:
    """Promotion thresholds; a None floor or gap is not checked."""

    metric: str
    min_value: float
    margin: float = 0.0
    segment_floor: float | None = None
    min_segment_rows: int = 30
    min_group_positives: int = 20
    max_tpr_gap: float | None = None
    max_selection_rate_gap: float | None = None
    threshold: str | float = TOP_DECILE


@dataclass(frozen=True)
class DriftSpec:
    """PSI above `psi_warning` flags a feature; `bins` quantile bins from the training sample."""

    psi_warning: float = 0.2
    bins: int = 10


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to train, gate, explain and monitor one model; `features` includes the categorical ones."""

    name: str
    description: str
    purpose: str
    entity: str
    as_of: str
    label: LabelSpec
    features: tuple[str, ...]
    algorithms: dict[str, dict[str, Any]]
    gate: GateSpec
    owner: str
    feature_table: str | None = None
    categorical: tuple[str, ...] = ()
    split: SplitSpec = field(default_factory=SplitSpec)
    segments: tuple[str, ...] = ()
    fairness_groups: tuple[str, ...] = ()
    drift: DriftSpec = field(default_factory=DriftSpec)
    reasons_top: int = 3
    source: str = ""

    @property
    def numeric(self) -> tuple[str, ...]:
        """Features that are not categorical, in spec order."""
        return tuple(f for f in self.features if f not in self.categorical)

    def required_columns(self) -> list[str]:
        """Columns a training frame must hold, without duplicates, in a stable order."""
        wanted = [self.entity, self.as_of, self.label.column, *self.features, *self.segments, *self.fairness_groups]
        return list(dict.fromkeys(wanted))

    def split_dates(self, frame: pd.DataFrame) -> tuple[list, list]:
        """(train as-of dates, holdout as-of dates), each sorted, from the frame's distinct as-of dates."""
        dates = sorted(pd.Series(frame[self.as_of]).dropna().unique().tolist())
        n = self.split.holdout_dates
        holdout = dates[-n:]
        if not holdout or not self.split.purge_days:
            return dates[:-n], holdout
        first = pd.Timestamp(holdout[0])
        train = [d for d in dates[:-n] if (first - pd.Timestamp(d)).days >= self.split.purge_days]
        return train, holdout

    def validate_frame(self, frame: pd.DataFrame) -> None:
        """Raise UserError when the frame lacks a column, has a non-0/1 label, or splits into a one-class side."""
        where = f"model {self.name!r}" + (f" ({self.source})" if self.source else "")
        missing = [c for c in self.required_columns() if c not in frame.columns]
        if missing:
            raise UserError(f"{where}: frame lacks columns {', '.join(missing)}")
        non_numeric = [f for f in self.numeric if not pd.api.types.is_numeric_dtype(frame[f])
                       or pd.api.types.is_bool_dtype(frame[f])]
        if non_numeric:
            raise UserError(f"{where}: features {', '.join(non_numeric)} are not numeric; list them under categorical")
        label = frame[self.label.column]
        bad = label[~label.isin([0, 1])]
        if len(bad):
            sample = ", ".join(map(str, bad.drop_duplicates().head(3).tolist()))
            raise UserError(f"{where}: label {self.label.column} must be 0/1; "
                            f"{len(bad)} rows hold other values ({sample})")
        train_dates, holdout_dates = self.split_dates(frame)
        if not train_dates:
            raise InsufficientDataError(f"{where}: {len(holdout_dates)} distinct {self.as_of} values leave nothing to train on "
                            f"with split.holdout_dates={self.split.holdout_dates}")
        dates = frame[self.as_of]
        for side, chosen in (("train", train_dates), ("holdout", holdout_dates)):
            classes = set(label[dates.isin(chosen)].astype(int).unique().tolist())
            if classes != {0, 1}:
                raise InsufficientDataError(f"{where}: the {side} side ({self.as_of} {chosen[0]}..{chosen[-1]}) holds only "
                                f"label {sorted(classes)}; it needs both classes")


class _Reader:
    """Typed access to a YAML mapping; errors name the file and the key path."""

    def __init__(self, source: str, path: str, data: Any):
        self.source, self.path = source, path
        if not isinstance(data, dict):
            self.fail(self.path, f"must be a mapping, got {type(data).__name__}")
        self.data, self.used = data, set()

    def fail(self, key: str, message: str):
        raise UserError(f"{self.source}: {key}: {message}")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: str, default: Any = ...) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is ...:
                self.fail(self.key(name), "missing")
            return default
        return _coerce(self, self.key(name), self.data[name], kind)

    def child(self, name: str, required: bool = True) -> _Reader | None:
        self.used.add(name)
        if name not in self.data:
            if required:
                self.fail(self.key(name), "missing")
            return None
        return _Reader(self.source, self.key(name), self.data[name])

    def done(self) -> None:
        unknown = sorted(set(map(str, self.data)) - self.used)
        if unknown:
            self.fail(self.key(unknown[0]), f"unknown key (known: {', '.join(sorted(self.used))})")


def _coerce(reader: _Reader, key: str, value: Any, kind: str) -> Any:
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            reader.fail(key, f"must be a non-empty string, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            reader.fail(key, f"must be an integer, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            reader.fail(key, f"must be a number, got {value!r}")
        return float(value)
    if kind == "names":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            reader.fail(key, f"must be a list of column names, got {value!r}")
        if len(set(value)) != len(value):
            reader.fail(key, "lists a column twice")
        return tuple(value)
    raise AssertionError(kind)


def _algorithm_params(reader: _Reader) -> dict[str, dict[str, Any]]:
    from models.estimators import estimator_param_names

    algorithms: dict[str, dict[str, Any]] = {}
    for algo, params in reader.data.items():
        key = reader.key(str(algo))
        if algo not in ALGORITHMS:
            reader.fail(key, f"unknown algorithm; expected one of {', '.join(ALGORITHMS)}")
        params = {} if params is None else params
        if not isinstance(params, dict):
            reader.fail(key, f"must be a mapping of parameters, got {params!r}")
        allowed = estimator_param_names(algo)
        for name, value in params.items():
            if name not in allowed:
                reader.fail(f"{key}.{name}", f"not a parameter of {algo}")
            if not isinstance(value, (str, int, float, bool)) and value is not None:
                reader.fail(f"{key}.{name}", f"must be a scalar, got {value!r}")
        algorithms[algo] = dict(params)
        reader.used.add(algo)
    if not algorithms:
        reader.fail(reader.path, "lists no algorithm")
    return algorithms


def _gate(reader: _Reader) -> GateSpec:
    metric = reader.get("metric", "str")
    if metric not in METRICS:
        reader.fail(reader.key("metric"), f"{metric!r} is not one of {', '.join(METRICS)}")
    threshold = reader.data.get("threshold", TOP_DECILE)
    reader.used.add("threshold")
    if threshold != TOP_DECILE and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                    or not 0 < threshold < 1):
        reader.fail(reader.key("threshold"), f"must be {TOP_DECILE!r} or a probability in (0, 1), got {threshold!r}")
    gate = GateSpec(
        metric=metric, min_value=reader.get("min_value", "float"), margin=reader.get("margin", "float", 0.0),
        segment_floor=reader.get("segment_floor", "float", None),
        min_segment_rows=reader.get("min_segment_rows", "int", 30),
        min_group_positives=reader.get("min_group_positives", "int", 20),
        max_tpr_gap=reader.get("max_tpr_gap", "float", None),
        max_selection_rate_gap=reader.get("max_selection_rate_gap", "float", None),
        threshold=threshold if threshold == TOP_DECILE else float(threshold),
    )
    reader.done()
    return gate


def _model(source: str, path: str, name: str, data: Any) -> ModelSpec:
    r = _Reader(source, path, data)
    label_r = r.child("label")
    where = label_r.data.get("where", {})
    label_r.used.add("where")
    if not isinstance(where, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in where.items()):
        r.fail(label_r.key("where"), f"must map column names to string values, got {where!r}")
    label = LabelSpec(label_r.get("column", "str"), label_r.get("definition", "str"),
                      label_r.get("table", "str", None), label_r.get("horizon_days", "int", None),
                      tuple(sorted(where.items())))
    label_r.done()
    split_r = r.child("split", required=False)
    split = (SplitSpec(split_r.get("holdout_dates", "int", 1), split_r.get("purge_days", "int", 0))
             if split_r else SplitSpec())
    if split_r:
        split_r.done()
        if split.holdout_dates < 1:
            r.fail(split_r.key("holdout_dates"), "must be at least 1")
    drift_r = r.child("drift", required=False)
    drift = (DriftSpec(drift_r.get("psi_warning", "float", 0.2), drift_r.get("bins", "int", 10))
             if drift_r else DriftSpec())
    if drift_r:
        drift_r.done()
    reasons_r = r.child("reasons", required=False)
    top = reasons_r.get("top", "int", 3) if reasons_r else 3
    if reasons_r:
        reasons_r.done()
    if not _NAME.match(name):
        r.fail(r.key("name") if not path else path, f"model name {name!r} must match {_NAME.pattern}")
    features, categorical = r.get("features", "names"), r.get("categorical", "names", ())
    spec = ModelSpec(
        name=name, description=r.get("description", "str"), purpose=r.get("purpose", "str"),
        entity=r.get("entity", "str"), as_of=r.get("as_of", "str"), label=label,
        # Categorical features may be listed under features too or only under categorical.
        features=features + tuple(c for c in categorical if c not in features),
        algorithms=_algorithm_params(r.child("algorithms")),
        gate=_gate(r.child("gate")), owner=r.get("owner", "str"), feature_table=r.get("feature_table", "str", None),
        categorical=categorical, split=split, segments=r.get("segments", "names", ()),
        fairness_groups=r.get("fairness_groups", "names", ()), drift=drift, reasons_top=top, source=source,
    )
    r.used.add("name")
    if "name" in r.data and r.data["name"] != name:
        r.fail(r.key("name"), f"{r.data['name']!r} differs from the model's key {name!r}")
    r.done()
    _check_consistency(r, spec)
    return spec


def _check_consistency(r: _Reader, spec: ModelSpec) -> None:
    if not spec.features:
        r.fail(r.key("features"), "lists no feature")
    for role, column in (("entity", spec.entity), ("as_of", spec.as_of), ("label.column", spec.label.column)):
        if column in spec.features:
            r.fail(r.key("features"), f"{column} is the {role} column, not a feature")
    if spec.reasons_top < 1:
        r.fail(r.key("reasons.top"), "must be at least 1")
    if spec.drift.bins < 2:
        r.fail(r.key("drift.bins"), "must be at least 2")


def _read_yaml(path: str | Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise UserError(f"{path}: no such model spec file") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None


def parse_specs(data: Any, source: str) -> dict[str, ModelSpec]:
    """Specs from an already-parsed `{models: {name: mapping}}` document; `source` names it in errors."""
    if not isinstance(data, dict) or "models" not in data:
        raise UserError(f"{source}: models: missing (a top-level `models:` mapping is expected)")
    unknown = sorted(set(map(str, data)) - {"models"})
    if unknown:
        raise UserError(f"{source}: {unknown[0]}: unknown top-level key (only `models:` is read)")
    models = data["models"]
    if not isinstance(models, dict) or not models:
        raise UserError(f"{source}: models: must be a non-empty mapping of model name to spec")
    return {str(name): _model(source, f"models.{name}", str(name), body) for name, body in models.items()}


def load_specs(path: str | Path) -> dict[str, ModelSpec]:
    """All model specs of a YAML file whose top-level `models:` maps model name to spec."""
    return parse_specs(_read_yaml(path), str(path))


def load_spec_file(path: str | Path) -> ModelSpec:
    """One model spec from a YAML file holding a single mapping with a `name:` key."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: must be a mapping with a `name:` key")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"{path}: name: missing or not a string")
    return _model(str(path), "", name, data)
