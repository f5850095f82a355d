"""Configuration: conf/base.yaml + an overlay chosen by C360_ENV + C360__* environment overrides."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from c360.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = Path(os.environ.get("C360_CONF_DIR", PROJECT_ROOT / "conf"))
ENV_VAR = "C360_ENV"
DEFAULT_ENV = "local"
_OVERRIDE_PREFIX = "C360__"


class ConfigError(UserError):
    """A configuration file or override is invalid; the message names the key and its source."""


@dataclass(frozen=True)
class LakehouseConf:
    root: str
    landing: str
    truth: str
    quality: str


@dataclass(frozen=True)
class SparkConf:
    master: str
    app_name: str
    shuffle_partitions: int
    driver_memory: str
    log_level: str
    extra: dict[str, str] = field(default_factory=dict)
    driver_java_options: str = ""
    class_archive: str = ""


@dataclass(frozen=True)
class DatagenConf:
    customers: int
    seed: int
    start_date: dt.date
    days: int
    bad_row_rate: float
    history_months: int


@dataclass(frozen=True)
class IngestConf:
    home_country_code: str


@dataclass(frozen=True)
class QualityConf:
    min_row_ratio_vs_previous: float
    data_docs: bool


@dataclass(frozen=True)
class RunConf:
    git_sha: str


@dataclass(frozen=True)
class OrchestrationConf:
    airflow_home: str
    demo: bool
    owner: str
    schedule: str
    start_date: dt.date
    catchup: bool
    max_active_runs: int
    retries: int
    retry_delay_seconds: int
    max_retry_delay_seconds: int
    task_timeout_minutes: int
    spark_conn_id: str
    landing_poke_seconds: int
    landing_timeout_hours: int
    py_files: str = ""
    skip_unchanged: bool = True
    models_schedule: str = "0 3 * * 0"


@dataclass(frozen=True)
class ModelsConf:
    tracking_uri: str
    artifact_location: str


@dataclass(frozen=True)
class LineageConf:
    enabled: bool
    namespace: str
    events: str
    marquez_url: str = ""


@dataclass(frozen=True)
class MaintenanceConf:
    vacuum_retention_days: int
    optimize_min_files: int
    history_versions: int


@dataclass(frozen=True)
class Config:
    """The validated configuration of one environment."""

    env: str
    lakehouse: LakehouseConf
    spark: SparkConf
    datagen: DatagenConf
    ingest: IngestConf
    quality: QualityConf
    run: RunConf
    orchestration: OrchestrationConf
    models: ModelsConf
    lineage: LineageConf
    maintenance: MaintenanceConf
    conf_dir: Path = CONF_DIR

    def path(self, location: str) -> str:
        """Resolve a configured location: URIs stay as they are, relative paths join the project root."""
        if "://" in location or location.startswith("/"):
            return location
        return str((PROJECT_ROOT / location).resolve())


def _merge(base: dict, overlay: dict) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_keys(data: dict, cls: type, source: str, prefix: str = "") -> None:
    """Fail on keys the dataclass does not declare, naming the key and the file it came from."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown config key '{dotted}' in {source}; known keys here: {sorted(known)}")
        sub = hints[key]
        if dataclasses.is_dataclass(sub) and isinstance(value, dict):
            _check_keys(value, sub, source, f"{dotted}.")


def _coerce(value: Any, hint: Any, dotted: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{dotted}' must be a mapping, got {value!r}")
        return _build(hint, value, dotted + ".")
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                return value.lower() in {"true", "1", "yes"}
            return bool(value)
        if hint is dt.date:
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if hint in (int, float, str):
            if hint is int and isinstance(value, float):
                raise ValueError(value)
            return hint(value)
        if typing.get_origin(hint) is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): str(v) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key '{dotted}' has invalid value {value!r} (expected {getattr(hint, '__name__', hint)})") from exc
    return value


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], prefix + f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing config key '{prefix}{f.name}'")
    return cls(**kwargs)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at top level")
    return data


def _env_overrides(environ: typing.Mapping[str, str]) -> dict:
    """C360__SPARK__MASTER=x -> {"spark": {"master": "x"}}."""
    overrides: dict = {}
    for name, value in environ.items():
        if not name.startswith(_OVERRIDE_PREFIX):
            continue
        parts = name[len(_OVERRIDE_PREFIX):].lower().split("__")
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return overrides


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def load_config(env: str | None = None, conf_dir: Path | None = None,
                environ: typing.Mapping[str, str] | None = None) -> Config:
    """Load base.yaml, overlay <env>.yaml and C360__* overrides; validate into a Config."""
    environ = os.environ if environ is None else environ
    conf_dir = Path(conf_dir or environ.get("C360_CONF_DIR", CONF_DIR))
    env = env or environ.get(ENV_VAR, DEFAULT_ENV)
    base_path = conf_dir / "base.yaml"
    data = _read_yaml(base_path)
    _check_keys(data, Config, str(base_path))
    overlay_path = conf_dir / f"{env}.yaml"
    if overlay_path.exists():
        overlay = _read_yaml(overlay_path)
        _check_keys(overlay, Config, str(overlay_path))
        data = _merge(data, overlay)
    elif env != DEFAULT_ENV:
        raise ConfigError(f"{ENV_VAR}={env!r} but there is no overlay {overlay_path}")
    overrides = _env_overrides(environ)
    _check_keys(overrides, Config, f"environment variables {_OVERRIDE_PREFIX}*")
    data = _merge(data, overrides)
    data.setdefault("run", {})
    if not data["run"].get("git_sha"):
        data["run"] = {**data["run"], "git_sha": _git_sha()}
    data.pop("env", None)
    cfg = _build(Config, {**data, "env": env})
    return dataclasses.replace(cfg, conf_dir=conf_dir)


def read_conf_yaml(conf_dir: Path, name: str) -> dict:
    """Read another YAML file of a conf folder (tables.yaml, sources.yaml, ...)."""
    return _read_yaml(Path(conf_dir) / name)
