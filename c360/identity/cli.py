"""`c360 resolve` and `c360 identity ...` sub-commands; c360.cli's build_parser calls register()."""

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


def summary_lines(report, gold=None) -> list[str]:
    """What a resolution run did, in a few lines (shared by the CLI and the demo)."""
    s = report.statistics
    lines = [f"resolve {report.run_date} ({report.mode}, {report.backend}, model {report.model_version}"
             f"{', trained' if report.trained else ''}): {s['records']} records -> {s['clusters']} customers, "
             f"{s['singletons']} singletons, duplicate rate {s['duplicate_rate']:.1%}, {report.comparisons} comparisons",
             f"  events {report.events or 'none'}, review queue {report.review_pending} pending, "
             f"{report.seconds.get('total', 0):.0f}s"]
    if report.training:
        training = report.training
        lines.append(f"  trained on {', '.join(training['comparisons'])}; EM passes {len(training['em_passes'])}, "
                     f"skipped {len(training['em_skipped'])}; prior {training['prior']:.3g} from "
                     f"{training['prior_source']}")
    if gold is not None:
        version = "unchanged" if gold.version is None else f"v{gold.version}"
        lines.append(f"  gold.customer_360 {version}: +{gold.inserted} ~{gold.updated} -{gold.deleted}")
    return lines


def evaluation_lines(result) -> list[str]:
    """An evaluation against the generator's truth in a few lines (shared by the CLI and the demo)."""
    if result is None:
        return ["  no ground truth to evaluate against (evaluation.truth_records in conf/identity.yaml)"]
    a = result.accuracy
    lines = [f"  vs truth: pairwise precision {a['pairwise_precision']:.4f} recall {a['pairwise_recall']:.4f} "
             f"F1 {a['pairwise_f1']:.4f}; B-cubed F1 {a['bcubed_f1']:.4f}; "
             f"look-alikes merged {result.look_alike_merges}"]
    recall = result.blocking_recall
    if recall:
        lines.append(f"  blocking recall {recall['recall']:.4f} ({recall['blocked_true_pairs']} of "
                     f"{recall['true_pairs']} true pairs blocked)")
    return lines


def cmd_resolve(args: argparse.Namespace) -> int:
    """Resolve source records to stable customer ids (incremental by default), then publish gold.customer_360."""
    from c360 import pipeline
    from c360.identity import service
    from c360 import publish as publish_gold

    cfg, spark = pipeline.start(args.env)
    run = pipeline.new_run(cfg, service.JOB, args.date, args.run_id)
    report = service.run_resolution(spark, cfg, run, full_relink=args.full_relink, retrain=args.retrain,
                                    backend=args.backend)
    gold = None
    if not args.skip_gold:
        gold = publish_gold.publish(spark, cfg, pipeline.new_run(cfg, publish_gold.JOB, args.date, args.run_id))
    for line in summary_lines(report, gold):
        _out(line)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Explain why a record belongs to its customer: each comparison's level and match weight per pair."""
    from c360 import pipeline
    from c360.identity.explain import ExplainError, explain_record, render

    cfg, spark = pipeline.start(args.env)
    try:
        explanation = explain_record(spark, cfg, args.record, chart=args.chart)
    except ExplainError as exc:
        raise UserError(str(exc)) from None
    for line in render(explanation):
        _out(line)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    """Train and store a new model version; the next `c360 resolve` relinks everything with it."""
    from c360 import io, pipeline
    from c360.identity import service
    from c360.identity.conf import load_identity_conf

    cfg, spark = pipeline.start(args.env)
    if not io.exists(spark, cfg, service.RECORDS):
        raise UserError(f"{service.RECORDS} does not exist yet; run `c360 conform` first")
    run = pipeline.new_run(cfg, service.JOB, None, args.run_id)
    stored = service.train_model(spark, cfg, run, load_identity_conf(cfg, **(
        {"backend": args.backend} if args.backend else {})))
    _out(f"trained model {stored.version}: {stored.meta.get('records')} records, "
         f"{stored.meta.get('seconds', {}).get('training', 0):.0f}s; stored under {stored.meta.get('store')}")
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    """Fill rate and distinct share of every comparison field per source system, and what training would use."""
    from c360 import io, pipeline
    from c360.identity import model
    from c360.identity import profile as profiling
    from c360.identity import service
    from c360.identity.conf import load_identity_conf

    cfg, spark = pipeline.start(args.env)
    if not io.exists(spark, cfg, service.RECORDS):
        raise UserError(f"{service.RECORDS} does not exist yet; run `c360 conform` first")
    conf = load_identity_conf(cfg)
    profile = service.profile_match_records(spark, cfg, conf)
    for line in profiling.render(profile):
        _out(line)
    plan = model.plan_training(conf, profile)
    _out(f"comparisons trained: {', '.join(plan['comparisons'])}"
         f"{'; left out (too sparse): ' + ', '.join(plan['left_out']) if plan['left_out'] else ''}")
    _out(f"EM passes: {', '.join(plan['em_rules'])}")
    if plan["em_skipped"]:
        _out(f"EM passes skipped (fields below model.min_fill_rate {conf.model.min_fill_rate:.0%}): "
             f"{', '.join(plan['em_skipped'])}")
    rules = ", ".join(plan["prior_rules"]) or "none (the prior falls back to model.prior_fallback_records_per_person)"
    _out(f"prior rules: {rules}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score the current customer xref against the generator's truth: pairwise and B-cubed F1, look-alikes
    merged and (with --blocking) blocking recall; test, benchmark and demo tooling, never part of a run."""
    from c360 import io, pipeline
    from c360.identity import evaluation, service
    from c360.identity.conf import load_identity_conf

    cfg, spark = pipeline.start(args.env)
    if not io.exists(spark, cfg, service.XREF):
        raise UserError(f"{service.XREF} does not exist yet; run `c360 resolve` first")
    conf = load_identity_conf(cfg)
    match = None
    if args.blocking:
        match = service.match_records(spark, cfg, conf)
    result = evaluation.evaluate(spark, conf, evaluation.current_assignment(io.read(spark, cfg, service.XREF)),
                                 match)
    if result is None:
        raise UserError(f"no ground truth at {conf.evaluation.truth_records}; evaluation needs a generated bank")
    _out(f"identity evaluation of {service.XREF} v{io.current_version(spark, cfg, service.XREF)}:")
    for line in evaluation_lines(result):
        _out(line)
    if args.save:
        _out(f"  saved to {evaluation.save(spark, conf, args.date, args.save, result)}")
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    """List the review queue, or record a steward's accept/reject of pairs (honoured by the next run)."""
    from pyspark.sql import functions as F

    from c360 import io, pipeline
    from c360.identity import review

    cfg, spark = pipeline.start(args.env)
    if args.action == "list":
        if not io.exists(spark, cfg, review.REVIEW):
            raise UserError(f"{review.REVIEW} does not exist yet; run `c360 resolve` first")
        rows = io.read(spark, cfg, review.REVIEW).filter(F.col("status") == args.status).orderBy(
            F.desc("match_probability")).limit(args.limit).collect()
        for r in rows:
            _out(f"{r.unique_id_l:28} {r.unique_id_r:28} p={r.match_probability:.4f} {r.status}"
                 f"{' by ' + r.decided_by if r.decided_by else ''}")
        return EXIT_OK
    if len(args.records) != 2:
        raise UserError("accept/reject take two records: SYSTEM:RECORD_ID SYSTEM:RECORD_ID")
    run = pipeline.new_run(cfg, "identity_review", None, args.run_id)
    try:
        stats = review.record_decisions(spark, cfg, run, [tuple(args.records)], args.action == "accept", args.by)
    except review.ReviewError as exc:
        raise UserError(str(exc)) from None
    _out(f"{args.action}ed {args.records[0]} ~ {args.records[1]} by {args.by}"
         f" ({review.REVIEW} v{stats.version}); the next `c360 resolve` honours it")
    return EXIT_OK


def register(sub) -> None:
    """Add `resolve` and `identity {explain,profile,train,evaluate,review}` to the `c360` sub-command parsers."""
    p = sub.add_parser("resolve", help=cmd_resolve.__doc__, description=cmd_resolve.__doc__)
    p.set_defaults(func=cmd_resolve)
    p.add_argument("--date", type=_date, help="run date YYYY-MM-DD (default: today)")
    p.add_argument("--run-id", help="run id for commit metadata (default: $C360_RUN_ID or a manual__ id)")
    p.add_argument("--full-relink", action="store_true", help="re-score every record instead of the changed ones")
    p.add_argument("--retrain", action="store_true", help="train and store a new model version first (implies a full relink)")
    p.add_argument("--backend", choices=["duckdb", "spark"], help="Splink backend (default: conf/identity.yaml)")
    p.add_argument("--skip-gold", action="store_true", help="do not publish gold.customer_360 afterwards")
    identity = sub.add_parser("identity", help="identity resolution: explain, profile, train, evaluate, review",
                              description="Identity resolution tools.")
    commands = identity.add_subparsers(dest="identity_command", required=True, metavar="COMMAND")
    p = commands.add_parser("explain", help=cmd_explain.__doc__, description=cmd_explain.__doc__)
    p.set_defaults(func=cmd_explain)
    p.add_argument("record", help="SYSTEM:RECORD_ID, e.g. core_banking:C10012345")
    p.add_argument("--chart", help="also write the Splink waterfall chart to this HTML file")
    p = commands.add_parser("profile", help=cmd_profile.__doc__, description=cmd_profile.__doc__)
    p.set_defaults(func=cmd_profile)
    p = commands.add_parser("train", help=cmd_train.__doc__, description=cmd_train.__doc__)
    p.set_defaults(func=cmd_train)
    p.add_argument("--backend", choices=["duckdb", "spark"])
    p.add_argument("--run-id")
    p = commands.add_parser("evaluate", help=cmd_evaluate.__doc__, description=cmd_evaluate.__doc__)
    p.set_defaults(func=cmd_evaluate)
    p.add_argument("--blocking", action="store_true", help="also measure blocking recall (opens a Splink backend)")
    p.add_argument("--save", metavar="LABEL", help="keep the figures as JSON under identity/evaluations/")
    p.add_argument("--date", type=_date, help="date folder the saved figures go under (default: current)")
    p = commands.add_parser("review", help=cmd_review.__doc__, description=cmd_review.__doc__)
    p.set_defaults(func=cmd_review)
    p.add_argument("action", choices=["list", "accept", "reject"])
    p.add_argument("records", nargs="*", help="the pair to accept or reject: SYSTEM:RECORD_ID SYSTEM:RECORD_ID")
    p.add_argument("--status", default="pending", choices=["pending", "accepted", "rejected"], help="list filter")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--by", default="steward", help="who decided (recorded with the decision)")
    p.add_argument("--run-id")
