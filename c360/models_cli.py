"""`c360 train`, `c360 score` and `c360 models list|promote|rollback|card|disable|enable`: the data scientist's and reviewer's commands."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from c360.errors import EXIT_OK, UserError


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _cfg(args: argparse.Namespace):
    from c360.config import load_config
    from c360.pipeline import configure_logging

    configure_logging()
    return load_config(args.env)


def _run_id(args: argparse.Namespace, job: str) -> str:
    import os

    return args.run_id or os.environ.get("C360_RUN_ID") or f"manual__{job}__{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}"


def print_outcome(outcome) -> None:
    """The training outcome as a person reads it: candidates, version, gate decision, champion, card."""
    for algorithm, metrics in outcome.metrics.items():
        _out(f"  {algorithm:9} roc_auc {metrics.get('roc_auc', float('nan')):.4f}  "
             f"pr_auc {metrics.get('pr_auc', float('nan')):.4f}  brier {metrics.get('brier', float('nan')):.4f}")
    verdict = "promoted to champion" if outcome.promoted else "refused"
    _out(f"{outcome.model} v{outcome.version} ({outcome.algorithm}): {verdict}: {'; '.join(outcome.reasons)}")
    _out(f"{outcome.model} champion: v{outcome.champion_version}; model card: {outcome.card_path or outcome.card_uri}")


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model from its spec (conf/models.yaml or --spec FILE), log the candidates to MLflow, gate the best."""
    from c360 import modeling

    if bool(args.model) == bool(args.spec):
        raise UserError("give a model name from conf/models.yaml or --spec FILE, not both")
    cfg = _cfg(args)
    spec = modeling.load_spec(cfg, args.model, args.spec)
    print_outcome(modeling.train(cfg, spec, _run_id(args, modeling.JOB)))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    """Registered models: list versions, promote, roll back, show the card or drift, disable or enable (audited)."""
    from c360 import modeling

    cfg = _cfg(args)
    registry = modeling.model_registry(cfg)
    who, run_id = modeling.actor(), _run_id(args, "models")
    audit = modeling.audit_sink(cfg, run_id)
    name, action = args.model, args.action
    if action in ("promote", "rollback", "disable") and not args.reason:
        raise UserError(f"models {action} needs --reason (it is kept in ops.model_events)")
    if action == "list":
        champion = registry.champion(name)
        usable, why = registry.is_usable(name, modeling.load_spec(cfg, name).purpose)
        _out(f"{name}: champion v{champion.version if champion else '-'}; "
             + ("in use" if usable else f"NOT USED: {why}"))
        for v in registry.versions(name):
            metric = "" if v.metric is None else f"{v.metric:.4f}"
            _out(f"  v{v.version:>3} {','.join(v.aliases) or '-':20} {v.created_at:%Y-%m-%d %H:%M} "
                 f"{v.algorithm or '':9} {v.decision or '':9} {metric:7} {v.reason or ''}")
        return EXIT_OK
    if action == "drift":
        return _drift(cfg, name, args.chart)
    if action == "card":
        _out(registry.card(name, args.version))
        return EXIT_OK
    if action == "promote":
        if args.version is None:
            raise UserError("models promote needs --version")
        event = registry.promote(name, args.version, reason=args.reason, actor=who, audit=audit)
    elif action == "rollback":
        event = registry.rollback(name, reason=args.reason, actor=who, audit=audit)
    elif action == "disable":
        event = registry.disable(name, reason=args.reason, actor=who, audit=audit)
    else:
        event = registry.enable(name, actor=who, reason=args.reason or "", audit=audit)
    _out(f"{name}: {event['action']} v{event.get('version') or '-'} by {event['actor']} ({event['reason']})")
    return EXIT_OK


def _drift(cfg, name: str, chart: str | None) -> int:
    """Print the model's latest drift figures (ops.model_monitoring) and plot PSI per feature over dates."""
    from c360 import lineage, scoring

    table = lineage.open_table(cfg, scoring.MONITORING)
    frame = None if table is None else table.to_pandas()
    if frame is None or frame.empty or name not in set(frame["model"]):
        raise UserError(f"no drift figures for {name} yet: they are written when it scores (c360 score)")
    frame = frame[frame["model"] == name].sort_values(["as_of_date", "feature"])
    latest = frame[frame["as_of_date"] == frame["as_of_date"].max()]
    _out(f"{name} v{latest['model_version'].iloc[0]} on {latest['as_of_date'].iloc[0]}: PSI against training")
    for row in latest.sort_values("psi", ascending=False).itertuples(index=False):
        _out(f"  {row.feature:24} {row.psi:8.4f}" + ("  WARNING" if row.warning else ""))
    if chart:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 5))
        for feature, part in frame.groupby("feature"):
            ax.plot(part["as_of_date"], part["psi"], marker="o", label=feature)
        ax.axhline(float(frame["threshold"].iloc[-1]), color="red", linestyle="--", label="warning level")
        ax.set(title=f"{name}: drift from training (PSI) per scored date", xlabel="as-of date", ylabel="PSI")
        ax.legend(fontsize=7, ncol=2)
        fig.autofmt_xdate()
        fig.savefig(chart, dpi=110, bbox_inches="tight")
        _out(f"chart: {chart}")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    """Score an as-of date's features with each enabled model's champion into gold.scores (reasons included)."""
    from c360 import pipeline, scoring
    from c360.spark import get_spark

    cfg = _cfg(args)
    day = args.date or dt.datetime.now(dt.timezone.utc).date()
    run = pipeline.new_run(cfg, scoring.JOB, day, args.run_id)
    for model, what in scoring.score(get_spark(cfg), cfg, run, args.model).items():
        _out(f"score {day} {model}: {what}")
    return EXIT_OK


def register(sub) -> None:
    """Add `train`, `score` and `models` to the `c360` sub-command parsers."""
    p = sub.add_parser("train", help=cmd_train.__doc__, description=cmd_train.__doc__)
    p.set_defaults(func=cmd_train)
    p.add_argument("model", nargs="?", help="a model of conf/models.yaml, e.g. churn")
    p.add_argument("--spec", help="a spec file (one model, with `name:`) whose feature_table is any Delta table")
    p.add_argument("--run-id")
    p = sub.add_parser("score", help=cmd_score.__doc__, description=cmd_score.__doc__)
    p.set_defaults(func=cmd_score)
    p.add_argument("--date", type=_date, help="as-of date YYYY-MM-DD (default: today)")
    p.add_argument("--model", action="append", help="only this model (repeatable)")
    p.add_argument("--run-id")
    p = sub.add_parser("models", help=cmd_models.__doc__, description=cmd_models.__doc__)
    p.set_defaults(func=cmd_models)
    p.add_argument("action", choices=["list", "promote", "rollback", "card", "disable", "enable", "drift"])
    p.add_argument("model")
    p.add_argument("--version", help="model version (promote; card: default the champion)")
    p.add_argument("--reason", help="why (required to promote, roll back or disable)")
    p.add_argument("--chart", help="drift: also plot PSI per feature over scored dates to this PNG")
    p.add_argument("--run-id")
