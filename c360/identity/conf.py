"""conf/identity.yaml as typed objects: backend, thresholds, model training, blocking, survivorship."""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from c360.config import Config, ConfigError, _build, _check_keys, _merge, read_conf_yaml

FILE = "identity.yaml"
# C360_IDENTITY__MATCH_THRESHOLD=0.95, C360_IDENTITY__MODEL__PRIOR_RECALL=0.5: overrides of identity.yaml
# (values are YAML, so lists and mappings can be given too), as C360__SECTION__KEY does for base.yaml.
ENV_PREFIX = "C360_IDENTITY__"
BACKENDS = ("duckdb", "spark")
LINK_TYPES = ("dedupe_and_link", "link_only")
SURVIVORSHIP_RULES = ("source_priority", "most_recent_verified", "most_complete", "earliest")
DETERMINISTIC_RULES = ("national_id", "email_dob", "card_hash", "crm_core_link")
# Columns of silver.customer_records the golden record is made of.
GOLDEN_COLUMNS = ("title", "first_name", "middle_name", "last_name", "date_of_birth", "email", "phone_e164",
                  "address_line1", "city", "postcode", "country", "national_id", "customer_since")


@dataclass(frozen=True)
class DuckDBConf:
    threads: int
    memory_limit: str
    temp_directory: str


@dataclass(frozen=True)
class SparkBackendConf:
    break_lineage_method: str
    checkpoint_dir: str
    num_partitions_on_repartition: int


@dataclass(frozen=True)
class ReviewBand:
    low: float
    high: float


@dataclass(frozen=True)
class CrowdedConf:
    share: float
    min_records: int


@dataclass(frozen=True)
class ModelConf:
    store: str
    seed: int
    u_max_pairs: float
    prior_recall: float
    prior_rules: list
    em_blocking_rules: list
    em_max_pairs: float
    min_fill_rate: float = 0.05
    prior_fallback_records_per_person: float = 2.0


@dataclass(frozen=True)
class VetoRule:
    """Cut a cluster holding two values of an identifier further apart than `max_edits` characters."""

    enabled: bool = True
    max_edits: int = 1


@dataclass(frozen=True)
class VetoConf:
    national_id: VetoRule = field(default_factory=VetoRule)
    dob: VetoRule = field(default_factory=VetoRule)


@dataclass(frozen=True)
class DeterministicConf:
    national_id: bool
    email_dob: bool
    card_hash: bool
    crm_core_link: bool

    def enabled(self) -> tuple[str, ...]:
        """Names of the rules switched on."""
        return tuple(r for r in DETERMINISTIC_RULES if getattr(self, r))


@dataclass(frozen=True)
class AttributeRule:
    """Survivorship of one attribute group: its columns come together from one source record."""

    columns: list
    rule: str
    min_sources: int = 1


@dataclass(frozen=True)
class SurvivorshipConf:
    priority: list
    attributes: dict


@dataclass(frozen=True)
class OverridesConf:
    file: str


@dataclass(frozen=True)
class EvaluationConf:
    truth_records: str


@dataclass(frozen=True)
class MlflowConf:
    tracking_uri: str
    artifact_location: str
    experiment: str


@dataclass(frozen=True)
class IdentityConf:
    """The validated identity-resolution configuration, with locations resolved."""

    backend: str
    duckdb: DuckDBConf
    spark_backend: SparkBackendConf
    match_threshold: float
    review_band: ReviewBand
    probability_decimals: int
    model: ModelConf
    crowded_values: CrowdedConf
    blocking: list
    deterministic_rules: DeterministicConf
    survivorship: SurvivorshipConf
    overrides: OverridesConf
    evaluation: EvaluationConf
    mlflow: MlflowConf
    link_type: str = "dedupe_and_link"
    veto: VetoConf = field(default_factory=VetoConf)
    nicknames: dict = field(default_factory=dict)
    environments: dict = field(default_factory=dict)


def _resolve(text: str, cfg: Config) -> str:
    """Fill {root} and {truth} with the active lakehouse locations."""
    root = cfg.path(cfg.lakehouse.root).rstrip("/")
    truth = cfg.path(cfg.lakehouse.truth).rstrip("/")
    return text.replace("{root}", root).replace("{truth}", truth)


def _validate(conf: IdentityConf, origin: str) -> None:
    if conf.link_type not in LINK_TYPES:
        raise ConfigError(f"{origin}: link_type must be one of {LINK_TYPES}, got {conf.link_type!r}")
    if not 0 <= conf.model.min_fill_rate < 1:
        raise ConfigError(f"{origin}: model.min_fill_rate must be in [0, 1)")
    if conf.model.prior_fallback_records_per_person <= 1:
        raise ConfigError(f"{origin}: model.prior_fallback_records_per_person must be above 1")
    if conf.backend not in BACKENDS:
        raise ConfigError(f"{origin}: backend must be one of {BACKENDS}, got {conf.backend!r}")
    if not 0 < conf.review_band.low <= conf.review_band.high <= 1:
        raise ConfigError(f"{origin}: review_band needs 0 < low <= high <= 1")
    if not 0 < conf.match_threshold < 1:
        raise ConfigError(f"{origin}: match_threshold must be in (0, 1)")
    seen: set[str] = set()
    for name, rule in conf.survivorship.attributes.items():
        if rule.rule not in SURVIVORSHIP_RULES:
            raise ConfigError(f"{origin}: survivorship.attributes.{name}.rule must be one of {SURVIVORSHIP_RULES}")
        unknown = set(rule.columns) - set(GOLDEN_COLUMNS)
        twice = set(rule.columns) & seen
        if unknown or twice:
            raise ConfigError(f"{origin}: survivorship.attributes.{name}: unknown columns {sorted(unknown)}, "
                              f"columns in another group {sorted(twice)}")
        seen |= set(rule.columns)
    missing = set(GOLDEN_COLUMNS) - seen
    if missing:
        raise ConfigError(f"{origin}: survivorship.attributes does not cover {sorted(missing)}")


def env_overrides(environ: typing.Mapping[str, str] | None = None) -> dict:
    """C360_IDENTITY__MODEL__PRIOR_RECALL=0.5 -> {"model": {"prior_recall": 0.5}} (values parsed as YAML)."""
    environ = os.environ if environ is None else environ
    overrides: dict = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = text if value is None else value
    return overrides


def load_identity_conf(cfg: Config, environ: typing.Mapping[str, str] | None = None, **overrides) -> IdentityConf:
    """Read conf/identity.yaml, overlay `environments.<cfg.env>`, C360_IDENTITY__* variables and `overrides`,
    validate and resolve paths."""
    origin = str(Path(cfg.conf_dir) / FILE)
    data = read_conf_yaml(cfg.conf_dir, FILE)
    _check_keys(data, IdentityConf, origin)
    overlay = (data.get("environments") or {}).get(cfg.env) or {}
    _check_keys(overlay, IdentityConf, f"{origin}: environments.{cfg.env}")
    from_env = env_overrides(environ)
    _check_keys(from_env, IdentityConf, f"environment variables {ENV_PREFIX}*")
    data = _merge(_merge(_merge(data, overlay), from_env), overrides)
    data["survivorship"] = dict(data["survivorship"])
    attributes = data["survivorship"].get("attributes") or {}
    for name, rule in attributes.items():
        _check_keys(rule, AttributeRule, f"{origin}: survivorship.attributes.{name}")
    conf = _build(IdentityConf, data)
    conf = dataclasses.replace(conf, survivorship=SurvivorshipConf(
        priority=list(conf.survivorship.priority),
        attributes={n: AttributeRule(**r) for n, r in attributes.items()}))
    _validate(conf, origin)
    return dataclasses.replace(
        conf,
        duckdb=dataclasses.replace(conf.duckdb, temp_directory=_resolve(conf.duckdb.temp_directory, cfg)),
        spark_backend=dataclasses.replace(conf.spark_backend,
                                          checkpoint_dir=_resolve(conf.spark_backend.checkpoint_dir, cfg)),
        model=dataclasses.replace(conf.model, store=_resolve(conf.model.store, cfg)),
        overrides=OverridesConf(file=_resolve(conf.overrides.file, cfg)),
        evaluation=EvaluationConf(truth_records=_resolve(conf.evaluation.truth_records, cfg)),
        mlflow=dataclasses.replace(conf.mlflow, tracking_uri=_resolve(conf.mlflow.tracking_uri, cfg),
                                   artifact_location=_resolve(conf.mlflow.artifact_location, cfg)),
        nicknames={str(k).lower(): [str(v).lower() for v in vs] for k, vs in (conf.nicknames or {}).items()},
    )
