"""Identity resolution on banks whose sources share fewer fields (issue #19).

Each variant is a tiny generated bank (one landing day) whose customer feeds drop or degrade fields
(c360.datagen.SourceVariant). Only silver.customer_records is built from it, with the real bronze
validation and silver transform (no GX gates: test_pipeline_integration covers those), then records
are linked in process with the job's own functions (train, score, cluster; no table written) and
pairwise F1 against the generator's truth is checked. One variant runs the whole job, writes included.
Kept small (200 persons) so the module stays within a few minutes on two cores.
"""

from __future__ import annotations

import datetime as dt
import glob
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from c360 import io, landing, pipeline
from c360.catalog import load_catalog
from c360.datagen import DatagenParams, SourceVariant, generate_bank
from c360.errors import EXIT_USER_ERROR, UserError
from c360.identity import evaluation, model, service
from c360.identity import profile as profiling
from c360.identity.conf import load_identity_conf
from jobs import bronze_ingest, silver_conform
from tests.conftest import make_config

START = dt.date(2026, 10, 1)
RECORDS = "silver.customer_records"
PERSONS = 200
NO_EMAIL = SourceVariant(drop_fields=("email",))
NO_NATIONAL_ID = SourceVariant(drop_fields=("national_id",))
# Only the digital channel knows e-mails: an email comparison that can never agree across systems.
EMAIL_IN_DIGITAL_ONLY = SourceVariant(email_systems=("digital",))
# Neither, and a third of birth dates missing besides, and 5% of names swapped.
SPARSE = SourceVariant(drop_fields=("email", "national_id"), extra_dob_missing=0.3, name_swap_rate=0.05)
# Every system holds each of its customers once, and no identifier is shared across systems.
LINK = SourceVariant(drop_fields=("email", "national_id"), one_record_per_system=True)
NAMES_ONLY = SourceVariant(drop_fields=("email", "national_id", "dob", "phone", "address"))


def _feed_frame(spark, cfg, key: str):
    """A landing feed through the real bronze validation and silver typing (valid rows only)."""
    feed = load_catalog(cfg).feed(*key.split("."))
    frame = None
    for path in sorted(glob.glob(f"{cfg.path(cfg.lakehouse.landing)}/{feed.system}/{feed.feed}/date=*/*")):
        validated = bronze_ingest.validate_records(landing.read_landing(spark, feed, path), feed)
        part = validated.filter(F.col("_defect").isNull()).withColumn("_landing_date", F.lit(START))
        frame = part if frame is None else frame.unionByName(part)
    return silver_conform.typed(frame, feed)


def build_bank(spark, root: Path, variant: SourceVariant, seed: int = 5):
    """Generate a variant bank and build its silver.customer_records (the real transform, appended once)."""
    cfg = make_config(root)
    generate_bank(DatagenParams(customers=PERSONS, seed=seed, start_date=START, days=1),
                  Path(cfg.path(cfg.lakehouse.landing)), Path(cfg.path(cfg.lakehouse.truth)),
                  cfg.conf_dir / "sources.yaml", variant=variant)
    step = next(s for s in silver_conform.STEPS if s.table == RECORDS)
    frame = step.build({k: _feed_frame(spark, cfg, k) for k in step.feeds}, silver_conform.ConformParams())
    io.append(spark, cfg, RECORDS, frame, pipeline.new_run(cfg, "test_setup", START, "test__setup"))
    return cfg


def link(spark, cfg, name: str = "test__link"):
    """Train, score and cluster the bank's records as the job does (nothing written), then evaluate the
    clusters and blocking against the truth explicitly: (linked, inputs, evaluation)."""
    conf = load_identity_conf(cfg)
    run = pipeline.new_run(cfg, service.JOB, START, name)
    inputs = service.read_inputs(spark, cfg, conf)
    linked = service.link_records(spark, conf, run, inputs)
    assignment = linked.clusters.select("unique_id", F.col("cluster_key").alias("customer_id"))
    return linked, inputs, evaluation.evaluate(spark, conf, assignment, inputs.match)


@pytest.mark.slow
@pytest.mark.parametrize("variant,minimum", [(NO_EMAIL, 0.97), (NO_NATIONAL_ID, 0.97), (SPARSE, 0.95),
                                             (EMAIL_IN_DIGITAL_ONLY, 0.97)],
                         ids=["no_email", "no_national_id", "no_email_no_id_sparse_dob_swapped", "email_in_digital_only"])
def test_variant_resolves_with_adapted_training(spark, tmp_path, variant, minimum):
    """Without e-mail and/or national id the model trains on what is there and keeps F1 above the bar."""
    cfg = build_bank(spark, tmp_path, variant)
    linked, inputs, evaluated = link(spark, cfg)
    accuracy = evaluated.accuracy
    print(f"variant {variant}: pairwise F1 {accuracy['pairwise_f1']:.4f}, blocking recall "
          f"{evaluated.blocking_recall['recall']:.4f}, prior from {linked.training['prior_source'][:40]}")
    assert linked.trained and accuracy["pairwise_f1"] >= minimum, accuracy
    for field in variant.drop_fields:
        assert field not in linked.training["comparisons"]
        assert all(v["fields"][field]["fill_rate"] == 0.0 for v in inputs.profile.values())
        assert not any(f"l.{field}" in rule for rule in linked.training["em_passes"])
    if variant.email_systems is not None:
        fills = {system: v["fields"]["email"]["fill_rate"] for system, v in inputs.profile.items() if system != "all"}
        assert all((rate > 0) == (system in variant.email_systems) for system, rate in fills.items()), fills
    assert evaluated.blocking_recall["recall"] > 0.95, evaluated.blocking_recall


@pytest.mark.slow
def test_link_only_one_record_per_system(spark, tmp_path, monkeypatch):
    """Each system holds a person once and no identifier is shared: link_only (set from the environment)
    reaches F1 0.97 with the prior from the fallback, and no customer holds two records of one system."""
    cfg = build_bank(spark, tmp_path, LINK)
    monkeypatch.setenv("C360_IDENTITY__LINK_TYPE", "link_only")
    # The bank: no rule finds a pair (the phone + birth date rule would, here), so the prior falls back.
    monkeypatch.setenv("C360_IDENTITY__MODEL__PRIOR_RULES", "['l.email = r.email and l.dob = r.dob']")
    report = service.run_resolution(spark, cfg, pipeline.new_run(cfg, service.JOB, START, "t"))
    conf = load_identity_conf(cfg)
    evaluated = evaluation.evaluate(spark, conf, evaluation.current_assignment(io.read(spark, cfg, service.XREF)),
                                    service.match_records(spark, cfg, conf))
    print(f"link_only: pairwise F1 {evaluated.f1:.4f}, blocking recall {evaluated.blocking_recall['recall']:.4f}")
    assert evaluated.f1 >= 0.97, evaluated.accuracy
    assert report.training["prior_source"].startswith("fallback"), report.training
    assert report.profile["all"]["fields"]["email"]["fill_rate"] == 0.0
    assert evaluated.blocking_recall["recall"] > 0.95, evaluated.blocking_recall
    xref = io.read(spark, cfg, "silver.customer_xref")
    assert xref.groupBy("customer_id", "source_system").count().filter("count > 1").count() == 0


@pytest.mark.slow
def test_names_only_fails_with_a_clear_error(spark, tmp_path, monkeypatch, capsys):
    """With nothing but names the run stops with a user error naming the fields identity needs; the CLI
    prints the profile, then that one line, and exits 3 without a traceback."""
    cfg = build_bank(spark, tmp_path, NAMES_ONLY)
    with pytest.raises(UserError) as raised:
        link(spark, cfg)
    assert isinstance(raised.value, model.IdentityConfigError)
    assert raised.value.exit_code == EXIT_USER_ERROR
    message = str(raised.value)
    assert "date of birth" in message and "model.min_fill_rate" in message and "conf/identity.yaml" in message
    for key in ("root", "landing", "truth", "quality"):
        monkeypatch.setenv(f"C360__LAKEHOUSE__{key.upper()}", getattr(cfg.lakehouse, key))
    from c360 import cli

    capsys.readouterr()
    assert cli.main(["identity", "profile"]) == EXIT_USER_ERROR
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("system") and "core_banking" in out
    assert err.startswith("c360: error: identity resolution cannot train") and "Traceback" not in err
    assert cli.main(["resolve", "--date", START.isoformat(), "--skip-gold"]) == EXIT_USER_ERROR
    assert "Traceback" not in capsys.readouterr().err


def _profile(fill: dict[str, float]) -> dict:
    fields = {name: {"fill_rate": fill.get(name, 0.0), "distinct_share": 1.0} for name in profiling.FIELDS}
    return {"all": {"records": 100, "fields": fields}}


def test_training_plan_skips_sparse_fields(cfg):
    """Comparisons, EM passes and prior rules on fields below min_fill_rate are left out."""
    conf = load_identity_conf(cfg, environ={})
    plan = model.plan_training(conf, _profile({"name": 1.0, "given_name": 1.0, "last_name": 1.0, "dob": 0.8,
                                               "phone": 0.9, "postcode": 0.9, "address_line1": 0.5,
                                               "email": 0.01}))
    assert plan["comparisons"] == ["name", "dob", "phone_e164", "address"]
    assert "l.email = r.email" in plan["em_skipped"] and "l.email = r.email" not in plan["em_rules"]
    assert plan["prior_rules"] == ["l.phone_e164 = r.phone_e164 and l.dob = r.dob"]
    assert model._uncovered(plan["comparisons"], plan["em_rules"]) == []
    assert model._uncovered(["name", "dob"], ["l.dob_block = r.dob_block"]) == ["dob"]
    assert model.fallback_prior(conf, 10_001) == pytest.approx(1 / 10_000)


def test_training_plan_with_names_only_is_a_user_error(cfg):
    """Only names filled: the error names the fields identity needs and the setting to change."""
    conf = load_identity_conf(cfg, environ={})
    with pytest.raises(model.IdentityConfigError, match="date of birth.*model.min_fill_rate"):
        model.plan_training(conf, _profile({"name": 1.0, "given_name": 1.0, "last_name": 1.0, "dob": 0.01}))


def test_identity_conf_environment_overrides(cfg):
    """C360_IDENTITY__* variables override identity.yaml (values as YAML); unknown keys are errors."""
    conf = load_identity_conf(cfg, environ={"C360_IDENTITY__LINK_TYPE": "link_only",
                                            "C360_IDENTITY__VETO__NATIONAL_ID__ENABLED": "false",
                                            "C360_IDENTITY__MODEL__PRIOR_RULES": "['l.dob = r.dob']"})
    assert conf.link_type == "link_only" and not conf.veto.national_id.enabled and conf.veto.dob.enabled
    assert conf.model.prior_rules == ["l.dob = r.dob"]
    assert all(rule.endswith("l.source_system <> r.source_system") for rule in model.prediction_blocking_rules(conf))
    with pytest.raises(UserError, match="C360_IDENTITY__"):
        load_identity_conf(cfg, environ={"C360_IDENTITY__NO_SUCH_KEY": "1"})
    with pytest.raises(UserError, match="link_type"):
        load_identity_conf(cfg, environ={"C360_IDENTITY__LINK_TYPE": "fuzzy"})


def test_veto_is_configurable(spark):
    """Two national ids one character apart are a typo, further apart a conflict; switched off, never."""
    from c360.identity import clustering
    from c360.identity.conf import VetoConf, VetoRule

    clusters = spark.createDataFrame([("a", "k"), ("b", "k"), ("c", "k")], "unique_id string, cluster_key string")
    match = spark.createDataFrame(
        [("a", "core_banking", "AB123456C", "1980-01-02", None), ("b", "cards", "AB123457C", "1980-01-02", None),
         ("c", "core_banking", "ZZ999999Z", None, None)],
        "unique_id string, source_system string, national_id string, dob string, dob_transposed string")

    def pairs(veto, link_type="dedupe_and_link"):
        return sorted(tuple(r) for r in clustering.conflicting_pairs(clusters, match, veto, link_type).collect())

    assert pairs(VetoConf()) == [("a", "c"), ("b", "c")]
    assert pairs(VetoConf(national_id=VetoRule(max_edits=0))) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pairs(VetoConf(national_id=VetoRule(enabled=False))) == []
    assert pairs(VetoConf(national_id=VetoRule(enabled=False)), "link_only") == [("a", "c")]
