"""Model cards: what a model is for, what it was trained on, how it did overall and by segment, and the gate's word."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import markdown
import pandas as pd

from models.data import DatasetRef
from models.evaluate import Evaluation
from models.gate import GateDecision
from models.spec import ModelSpec


@dataclass(frozen=True)
class CardFacts:
    """Everything a card states about one registered version."""

    spec: ModelSpec
    version: str
    algorithm: str
    run_id: str
    inputs: tuple[DatasetRef, ...]
    train_dates: tuple[str, ...]
    holdout_dates: tuple[str, ...]
    train_rows: int
    holdout_rows: int
    evaluation: Evaluation
    candidates: dict[str, dict[str, float]]
    decision: GateDecision
    champion_after: str | None
    notes: tuple[str, ...] = ()


def _num(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_\n"
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(_num(v) if isinstance(v, float) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def limitations(facts: CardFacts) -> list[str]:
    """Plain statements of what the evaluation does not cover."""
    gate = facts.spec.gate
    out = list(facts.notes)
    skipped = facts.evaluation.segments[~facts.evaluation.segments["eligible"]]
    if len(skipped):
        names = ", ".join(f"{r.column}={r.value} ({r.rows} rows)" for r in skipped.itertuples(index=False))
        out.append(f"Segments below {gate.min_segment_rows} rows or with one class are reported but not gated: {names}.")
    for column, gaps in facts.evaluation.gaps.items():
        if gaps["groups"] < 2:
            out.append(f"Fairness by {column}: fewer than two groups with {gate.min_segment_rows} rows; gaps not measured.")
    out.append("The champion is compared on this holdout; if its own training saw these as-of dates, "
               "its metric is optimistic and the comparison favours it.")
    out.append("Reasons list only features that raise a score; contributions are in log-odds, not probability.")
    return out


def render_markdown(facts: CardFacts) -> str:
    """The card as Markdown."""
    spec, ev, decision = facts.spec, facts.evaluation, facts.decision
    metric = spec.gate.metric
    lines = [
        f"# Model card: {spec.name} v{facts.version}", "",
        f"{spec.description}", "",
        f"- **Purpose** (consent basis): {spec.purpose}", f"- **Owner**: {spec.owner}",
        f"- **Algorithm**: {facts.algorithm} (MLflow run `{facts.run_id}`)",
        f"- **Entity / as-of**: `{spec.entity}` at `{spec.as_of}`",
        f"- **Label** `{spec.label.column}`: {spec.label.definition}", "",
        "## Data", "",
        _table(pd.DataFrame([{"table": r.name, "uri": r.uri, "version": r.version, "rows": r.rows}
                             for r in facts.inputs], columns=["table", "uri", "version", "rows"])),
        f"Train: {facts.train_rows} rows, as-of dates {', '.join(facts.train_dates)}. "
        f"Holdout: {facts.holdout_rows} rows, as-of dates {', '.join(facts.holdout_dates)}.", "",
        f"Features ({len(spec.features)}): {', '.join(spec.features)}.", "",
        "## Metrics on the holdout", "",
        _table(pd.DataFrame([{"candidate": algo, **{k: m.get(k, float('nan')) for k in
                                                    ("roc_auc", "pr_auc", "brier", "lift_top_decile")}}
                             for algo, m in facts.candidates.items()])),
        "### By segment", "",
        _table(ev.segments.assign(eligible=ev.segments["eligible"].map({True: "yes", False: "no"}))),
        f"### Fairness (threshold: {ev.threshold})", "",
        _table(ev.fairness.drop(columns=["eligible"])),
        _table(pd.DataFrame([{"group": c, "tpr_gap": g["tpr_gap"], "selection_rate_gap": g["selection_rate_gap"]}
                             for c, g in ev.gaps.items()], columns=["group", "tpr_gap", "selection_rate_gap"])),
        "## Gate decision", "",
        f"**{'Promoted' if decision.promote else 'Refused'}** on {metric}: challenger {_num(decision.challenger_metric)}, "
        f"champion {('v' + decision.champion_version + ' ') if decision.champion_version else ''}"
        f"{_num(decision.champion_metric)}. Champion after the gate: "
        f"{('v' + facts.champion_after) if facts.champion_after else 'none'}.", "",
        *[f"- {reason}" for reason in decision.reasons], "",
        "## Limitations", "",
        *[f"- {item}" for item in limitations(facts)], "",
    ]
    return "\n".join(lines)


def render_html(text: str, title: str) -> str:
    """A standalone HTML page from the card's Markdown."""
    body = markdown.markdown(text, extensions=["tables"])
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>\n"
            f"{body}\n</body></html>\n")
