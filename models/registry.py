"""The MLflow model registry as the lakehouse uses it: aliases, gate tags, rollback, kill switches, loading.

Where things live (all in the MLflow backend store, so they survive restarts and are visible in the UI):
- the serving version: registered-model alias `champion`; the latest gated candidate: alias `challenger`;
- gate decisions: model-version tags `gate.*`;
- champion history (for rollback): registered-model tag `champion.history` (versions, oldest first)
  and `previous_champion`;
- model kill switch: registered-model tags `disabled`, `disabled.reason`, `disabled.by`, `disabled.at`;
- purpose kill switch: tags `purpose.<purpose>.disabled|reason|by|at` on the experiment `c360-models-controls`
  (a purpose is not a model, so it gets a store of its own rather than a fake registered model).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from c360.errors import UserError

log = logging.getLogger("c360.models")

CHAMPION = "champion"
CHALLENGER = "challenger"
CONTROLS_EXPERIMENT = "c360-models-controls"
PURPOSE_TAG = "c360.purpose"
HISTORY_TAG = "champion.history"
_HISTORY_KEEP = 200
AuditSink = Callable[[dict[str, Any]], None]


def experiment_name(model: str) -> str:
    """The MLflow experiment holding a model's training runs."""
    return f"c360-models-{model}"


@dataclass(frozen=True)
class VersionInfo:
    """One registered version: where it came from, its aliases and its gate record."""

    model: str
    version: str
    run_id: str | None
    aliases: tuple[str, ...]
    created_at: dt.datetime
    algorithm: str | None
    metric: float | None
    decision: str | None
    reason: str | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedModel:
    """A registered version loaded for scoring: the fitted sklearn Pipeline and which version it is."""

    name: str
    version: str
    model: Any
    run_id: str | None
    purpose: str | None


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@contextmanager
def trusting_own_artifacts() -> Iterator[None]:
    """Allow MLflow's own loader to deserialize while we load artifacts this process has just written."""
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    before = os.environ.get(key)
    os.environ[key] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


class ModelRegistry:
    """Registry operations over one MLflow tracking/registry store and one artifact root."""

    def __init__(self, tracking_uri: str, artifact_root: str):
        from mlflow import MlflowClient

        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        # A plain path would be taken relative to the working directory by some MLflow clients.
        self.artifact_root = artifact_root if "://" in artifact_root else Path(artifact_root).resolve().as_uri()
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def activate(self) -> None:
        """Point MLflow's fluent API (start_run, log_model) at this store; it has no per-call URI."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        """Id of an experiment by name, created under the artifact root when missing."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = f"{self.artifact_root.rstrip('/')}/{name}"
        log.info("models: creating experiment %s (artifacts at %s)", name, location)
        return self.client.create_experiment(name, artifact_location=location)

    def ensure_model(self, name: str, *, description: str, purpose: str, owner: str) -> None:
        """Create the registered model if missing; keep its description, purpose and owner in step with the spec."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
            self.client.update_registered_model(name, description=description)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(name, description=description)
        self.client.set_registered_model_tag(name, PURPOSE_TAG, purpose)
        self.client.set_registered_model_tag(name, "c360.owner", owner)

    def _model_tags(self, name: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_registered_model(name).tags)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise UserError(f"no registered model {name!r} in {self.tracking_uri}") from None
            raise

    def _info(self, name: str, mv: Any, aliases: tuple[str, ...] | None = None) -> VersionInfo:
        tags = dict(mv.tags)
        metric = tags.get("gate.challenger_metric")
        return VersionInfo(
            model=name, version=str(mv.version), run_id=mv.run_id,
            aliases=tuple(sorted(mv.aliases or ())) if aliases is None else aliases,
            created_at=dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.timezone.utc),
            algorithm=tags.get("c360.algorithm"), metric=float(metric) if metric not in (None, "") else None,
            decision=tags.get("gate.decision"), reason=tags.get("gate.reason"), tags=tags)

    def versions(self, name: str) -> list[VersionInfo]:
        """Every registered version of a model, oldest first."""
        self._model_tags(name)
        # Searched versions come without their aliases; the registered model holds them all.
        aliases = dict(self.client.get_registered_model(name).aliases)
        found = self.client.search_model_versions(f"name = '{name}'")
        infos = (self._info(name, mv, tuple(sorted(a for a, v in aliases.items() if str(v) == str(mv.version))))
                 for mv in found)
        return sorted(infos, key=lambda v: int(v.version))

    def version(self, name: str, version: str | int) -> VersionInfo:
        """One registered version; UserError when it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self._info(name, self.client.get_model_version(name, str(version)))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise UserError(f"model {name!r} has no version {version}") from None
            raise

    def alias(self, name: str, alias: str) -> VersionInfo | None:
        """The version an alias points at, or None when the model or alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self._info(name, self.client.get_model_version_by_alias(name, alias))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def champion(self, name: str) -> VersionInfo | None:
        """The version serving as champion, or None."""
        return self.alias(name, CHAMPION)

    def register(self, name: str, *, model_uri: str, run_id: str, model_id: str | None,
                 tags: dict[str, str], description: str) -> VersionInfo:
        """A new version of `name` from a logged model, with alias `challenger`."""
        mv = self.client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags,
                                              description=description, model_id=model_id)
        self.client.set_registered_model_alias(name, CHALLENGER, mv.version)
        log.info("models: registered %s v%s from run %s (alias %s)", name, mv.version, run_id, CHALLENGER)
        return self.version(name, mv.version)

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Set model-version tags."""
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, value)

    def _event(self, action: str, model: str | None, version: str | None, reason: str | None, actor: str,
               purpose: str | None, at: dt.datetime, audit: AuditSink | None) -> dict[str, Any]:
        event = {"model": model, "purpose": purpose, "action": action, "version": version, "reason": reason,
                 "actor": actor, "at": at}
        log.info("models: %s %s v%s by %s: %s", action, model or purpose, version, actor, reason)
        if audit is not None:
            audit(event)
        return event

    def _history(self, tags: dict[str, str]) -> list[str]:
        return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]

    def promote(self, name: str, version: str | int, *, reason: str, actor: str,
                audit: AuditSink | None = None) -> dict[str, Any]:
        """Point `champion` at a version (the old champion becomes `previous_champion`); returns the audit event."""
        tags = self._model_tags(name)
        target = self.version(name, version)
        current = self.champion(name)
        at = _now()
        self.client.set_registered_model_alias(name, CHAMPION, target.version)
        history = self._history(tags)
        if current is not None and (not history or history[-1] != current.version):
            history.append(current.version)
        if not history or history[-1] != target.version:
            history.append(target.version)
        self.client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history[-_HISTORY_KEEP:]))
        if current is not None and current.version != target.version:
            self.client.set_registered_model_tag(name, "previous_champion", current.version)
        self.tag_version(name, target.version, {"champion.promoted_at": at.isoformat(), "champion.promoted_by": actor,
                                                "champion.reason": reason})
        return self._event("promote", name, target.version, reason, actor, tags.get(PURPOSE_TAG), at, audit)

    def rollback(self, name: str, *, reason: str, actor: str, audit: AuditSink | None = None) -> dict[str, Any]:
        """Point `champion` back at the version that was champion before the current one; returns the audit event."""
        tags = self._model_tags(name)
        current = self.champion(name)
        history = self._history(tags)
        if current is not None and history and history[-1] == current.version:
            history = history[:-1]
        earlier = [v for v in history if current is None or v != current.version]
        if not earlier:
            raise UserError(f"model {name!r}: no earlier champion to roll back to "
                            f"(history: {tags.get(HISTORY_TAG, 'none')})")
        target = earlier[-1]
        at = _now()
        self.client.set_registered_model_alias(name, CHAMPION, target)
        history = history[:len(history) - history[::-1].index(target)]
        self.client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
        if len(history) >= 2:
            self.client.set_registered_model_tag(name, "previous_champion", history[-2])
        else:
            self.client.delete_registered_model_tag(name, "previous_champion")
        if current is not None:
            self.tag_version(name, current.version, {"champion.rolled_back_at": at.isoformat(),
                                                     "champion.rolled_back_by": actor,
                                                     "champion.rollback_reason": reason})
        return self._event("rollback", name, target, reason, actor, tags.get(PURPOSE_TAG), at, audit)

    def disable(self, name: str, *, reason: str, actor: str, audit: AuditSink | None = None) -> dict[str, Any]:
        """Kill switch: scoring must not use this model until enabled; returns the audit event."""
        tags = self._model_tags(name)
        at = _now()
        for key, value in (("disabled", "true"), ("disabled.reason", reason), ("disabled.by", actor),
                           ("disabled.at", at.isoformat())):
            self.client.set_registered_model_tag(name, key, value)
        champion = self.champion(name)
        return self._event("disable", name, champion.version if champion else None, reason, actor,
                           tags.get(PURPOSE_TAG), at, audit)

    def enable(self, name: str, *, actor: str, reason: str = "", audit: AuditSink | None = None) -> dict[str, Any]:
        """Lift a model's kill switch (the last disable reason stays as a record); returns the audit event."""
        tags = self._model_tags(name)
        at = _now()
        for key, value in (("disabled", "false"), ("enabled.by", actor), ("enabled.at", at.isoformat())):
            self.client.set_registered_model_tag(name, key, value)
        champion = self.champion(name)
        return self._event("enable", name, champion.version if champion else None, reason or None, actor,
                           tags.get(PURPOSE_TAG), at, audit)

    def _controls(self) -> str:
        return self.experiment_id(CONTROLS_EXPERIMENT)

    def disable_purpose(self, purpose: str, *, reason: str, actor: str,
                        audit: AuditSink | None = None) -> dict[str, Any]:
        """Kill switch for every model serving a purpose (e.g. consent withdrawn); returns the audit event."""
        experiment, at = self._controls(), _now()
        for key, value in (("disabled", "true"), ("reason", reason), ("by", actor), ("at", at.isoformat())):
            self.client.set_experiment_tag(experiment, f"purpose.{purpose}.{key}", value)
        return self._event("disable_purpose", None, None, reason, actor, purpose, at, audit)

    def enable_purpose(self, purpose: str, *, actor: str, reason: str = "",
                       audit: AuditSink | None = None) -> dict[str, Any]:
        """Lift a purpose's kill switch; returns the audit event."""
        experiment, at = self._controls(), _now()
        for key, value in (("disabled", "false"), ("enabled.by", actor), ("enabled.at", at.isoformat())):
            self.client.set_experiment_tag(experiment, f"purpose.{purpose}.{key}", value)
        return self._event("enable_purpose", None, None, reason or None, actor, purpose, at, audit)

    def purpose_block(self, purpose: str) -> str | None:
        """Why a purpose is switched off, or None when it is not."""
        experiment = self.client.get_experiment_by_name(CONTROLS_EXPERIMENT)
        tags = dict(experiment.tags) if experiment is not None else {}
        if tags.get(f"purpose.{purpose}.disabled") != "true":
            return None
        return (f"purpose {purpose!r} disabled by {tags.get(f'purpose.{purpose}.by')} at "
                f"{tags.get(f'purpose.{purpose}.at')}: {tags.get(f'purpose.{purpose}.reason')}")

    def is_usable(self, name: str, purpose: str) -> tuple[bool, str]:
        """(whether scoring may use the model's champion for this purpose, why)."""
        blocked = self.purpose_block(purpose)
        if blocked:
            return False, blocked
        try:
            tags = self._model_tags(name)
        except UserError as exc:
            return False, str(exc)
        served = tags.get(PURPOSE_TAG)
        if served != purpose:
            return False, f"model {name!r} serves purpose {served!r}, not {purpose!r}"
        if tags.get("disabled") == "true":
            return False, (f"model {name!r} disabled by {tags.get('disabled.by')} at {tags.get('disabled.at')}: "
                           f"{tags.get('disabled.reason')}")
        champion = self.champion(name)
        if champion is None:
            return False, f"model {name!r} has no champion version"
        return True, f"model {name!r} champion v{champion.version} usable for {purpose!r}"

    def card(self, name: str, version: str | int | None = None, dst: str | None = None) -> str:
        """Local path of a version's model card HTML (the champion's when no version is given)."""
        info = self.version(name, version) if version is not None else self.champion(name)
        if info is None or info.run_id is None:
            raise UserError(f"model {name!r}: no champion (or no run) to take a model card from")
        import mlflow.artifacts

        run_artifacts = self.client.get_run(info.run_id).info.artifact_uri.rstrip("/")
        local = _local_path(f"{run_artifacts}/model_card.html")
        if local is not None and dst is None:
            if not local.exists():
                raise UserError(f"model {name!r} v{info.version}: run {info.run_id} has no model_card.html")
            return str(local)
        return mlflow.artifacts.download_artifacts(run_id=info.run_id, artifact_path="model_card.html",
                                                   dst_path=dst or tempfile.mkdtemp(prefix="c360-card-"),
                                                   tracking_uri=self.tracking_uri)

    def load_version(self, name: str, version: str | int) -> LoadedModel:
        """A registered version loaded as its fitted sklearn Pipeline (skops, trusting only types named in code)."""
        import mlflow.artifacts
        import skops.io

        from models.estimators import TRUSTED_TYPES

        info = self.version(name, version)
        source = self.client.get_model_version_download_uri(name, info.version)
        with tempfile.TemporaryDirectory(prefix="c360-model-") as tmp:
            # A local artifact store is read in place; anything else is copied down first.
            local = _local_path(source) or Path(mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=self.tracking_uri))
            flavor = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))["flavors"]["sklearn"]
            if flavor.get("serialization_format") != "skops":
                raise UserError(f"model {name!r} v{info.version} is stored as {flavor.get('serialization_format')}; "
                                "only skops models are loaded")
            model = skops.io.load(local / flavor["pickled_model"], trusted=TRUSTED_TYPES)
        purpose = self._model_tags(name).get(PURPOSE_TAG)
        return LoadedModel(name, info.version, model, info.run_id, purpose)

    def load_champion(self, name: str) -> LoadedModel:
        """The champion version, loaded for scoring; UserError when there is none."""
        champion = self.champion(name)
        if champion is None:
            raise UserError(f"model {name!r} has no champion version")
        return self.load_version(name, champion.version)
