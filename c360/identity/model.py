"""The Splink model: comparisons, blocking rules, training, and porting a trained model between SQL dialects."""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import Linker, SettingsCreator
from splink.internals.exceptions import EMTrainingException

from c360.errors import UserError
from c360.identity import profile as profiling
from c360.identity.conf import IdentityConf

log = logging.getLogger(__name__)


class ModelMismatchError(RuntimeError):
    """The stored model was trained for other comparisons than the code defines."""


class IdentityConfigError(UserError):
    """The records do not hold enough to train a model: the message names what is missing and what to configure."""


# Columns with term-frequency adjustments: a match on a rare value says more than on a common one.
TF_COLUMNS = ("full_name", "last_name", "dob", "email")


def _name_comparison() -> cl.CustomComparison:
    """Given name and surname together, so swapped, nicknamed, initialled and married names each get a level."""
    last = cll.ExactMatchLevel("last_name")
    nickname = cll.ArrayIntersectLevel("name_keys", min_intersection=1)
    given_agrees = cll.Or(cll.ExactMatchLevel("given_name"), nickname)
    initial = cll.CustomLevel(
        "(length(given_name_l) = 1 or length(given_name_r) = 1) and given_initial_l = given_initial_r")
    return cl.CustomComparison(output_column_name="name", comparison_description="given name and surname", comparison_levels=[
        cll.Or(cll.NullLevel("given_name"), cll.NullLevel("last_name")),
        cll.ExactMatchLevel("full_name").configure(tf_adjustment_column="full_name",
                                                    label_for_charts="Exact match on given name and surname"),
        cll.ColumnsReversedLevel("given_name", "last_name", symmetrical=True).configure(
            label_for_charts="Given name and surname swapped"),
        cll.And(last, nickname).configure(label_for_charts="Same surname, nickname of the same given name"),
        cll.And(last, cll.JaroWinklerLevel("given_name", 0.88)).configure(
            label_for_charts="Same surname, given name Jaro-Winkler >= 0.88"),
        cll.And(given_agrees, cll.JaroWinklerLevel("last_name", 0.88)).configure(
            label_for_charts="Same given name, surname Jaro-Winkler >= 0.88"),
        cll.And(last, initial).configure(label_for_charts="Same surname, initial matches given name"),
        given_agrees.configure(label_for_charts="Same given name, different surname"),
        cll.ExactMatchLevel("last_name").configure(tf_adjustment_column="last_name",
                                                   label_for_charts="Same surname, different given name"),
        cll.And(cll.JaroWinklerLevel("given_name", 0.8), cll.JaroWinklerLevel("last_name", 0.8)).configure(
            label_for_charts="Both names Jaro-Winkler >= 0.8"),
        cll.ElseLevel(),
    ])


def _dob_comparison() -> cl.CustomComparison:
    """Date of birth, with day and month transposed as its own level (a common keying error)."""
    return cl.CustomComparison(output_column_name="dob", comparison_description="date of birth", comparison_levels=[
        cll.NullLevel("dob"),
        # Term frequencies: placeholder and clustered birth dates (1 January, age-limit dates) say little.
        cll.ExactMatchLevel("dob").configure(tf_adjustment_column="dob", label_for_charts="Exact match on date of birth"),
        cll.ColumnsReversedLevel("dob", "dob_transposed").configure(label_for_charts="Day and month transposed"),
        cll.LevenshteinLevel("dob", 1).configure(label_for_charts="One character different"),
        cll.ElseLevel(),
    ])


def _address_comparison() -> cl.CustomComparison:
    """Address line and postcode together: they are strongly correlated, so one comparison avoids double counting."""
    return cl.CustomComparison(output_column_name="address", comparison_description="address and postcode", comparison_levels=[
        cll.CustomLevel("(postcode_l is null or postcode_r is null) and "
                        "(address_line1_l is null or address_line1_r is null)").configure(is_null_level=True),
        cll.And(cll.ExactMatchLevel("address_line1"), cll.ExactMatchLevel("postcode")).configure(
            label_for_charts="Same address and postcode"),
        cll.CustomLevel("postcode_l = postcode_r and (address_line1_l is null or address_line1_r is null)",
                        label_for_charts="Same postcode, address line unknown on one side"),
        cll.And(cll.ExactMatchLevel("postcode"), cll.JaroWinklerLevel("address_line1", 0.9)).configure(
            label_for_charts="Same postcode, address line Jaro-Winkler >= 0.9"),
        cll.ExactMatchLevel("postcode").configure(label_for_charts="Same postcode, different address line"),
        cll.ExactMatchLevel("address_line1").configure(label_for_charts="Same address line, different postcode"),
        cll.CustomLevel("substr(postcode_l, 1, length(postcode_l) - 2) = substr(postcode_r, 1, length(postcode_r) - 2)",
                        label_for_charts="Same postcode sector"),
        cll.ElseLevel(),
    ])


def _email_comparison() -> cl.CustomComparison:
    """E-mail: exact (term-frequency adjusted), same user name at another provider, similar user name."""
    return cl.CustomComparison(output_column_name="email", comparison_description="e-mail address", comparison_levels=[
        cll.NullLevel("email"),
        cll.ExactMatchLevel("email").configure(tf_adjustment_column="email", label_for_charts="Exact match on e-mail"),
        cll.ExactMatchLevel("email_user").configure(label_for_charts="Same user name, other domain"),
        cll.JaroWinklerLevel("email_user", 0.88).configure(label_for_charts="User name Jaro-Winkler >= 0.88"),
        cll.ElseLevel(),
    ])


def comparisons() -> list:
    """The model's comparisons, in the order of the settings JSON."""
    return [
        _name_comparison(),
        _dob_comparison(),
        _email_comparison(),
        cl.CustomComparison(output_column_name="phone_e164", comparison_description="phone number", comparison_levels=[
            cll.NullLevel("phone_e164"), cll.ExactMatchLevel("phone_e164"), cll.LevenshteinLevel("phone_e164", 1),
            cll.ElseLevel()]),
        _address_comparison(),
        _national_id_comparison(),
    ]


def _national_id_comparison() -> cl.CustomComparison:
    """National id: exact, or one character different (a keying error), else disagreement."""
    return cl.CustomComparison(output_column_name="national_id", comparison_description="national id", comparison_levels=[
        cll.NullLevel("national_id"), cll.ExactMatchLevel("national_id"),
        cll.LevenshteinLevel("national_id", 1).configure(label_for_charts="One character different"),
        cll.ElseLevel()])


def active_comparisons(populated: set[str]) -> list[str]:
    """Comparisons (output column names) whose fields are all populated enough to be trained."""
    return [name for name, fields in profiling.COMPARISON_FIELDS.items() if set(fields) <= populated]


def _comparisons(active: Iterable[str] | None) -> list:
    chosen = None if active is None else set(active)
    return [c for c in comparisons() if chosen is None or c.create_output_column_name() in chosen]


def prediction_blocking_rules(conf: IdentityConf) -> list[str]:
    """Blocking rules for scoring; link_only compares records of different source systems only."""
    if conf.link_type == "link_only":
        return [f"({rule}) and l.source_system <> r.source_system" for rule in conf.blocking]
    return list(conf.blocking)


def settings(conf: IdentityConf, retain_intermediate: bool = False, active: Iterable[str] | None = None,
             prior: float | None = None) -> SettingsCreator:
    """Untrained Splink settings: dedupe across all source systems with the configured blocking rules
    (`active`: only these comparisons; `prior`: a fixed probability that two random records match)."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=_comparisons(active),
        blocking_rules_to_generate_predictions=prediction_blocking_rules(conf),
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=retain_intermediate,
        additional_columns_to_retain=["source_system"],
        max_iterations=25,
        em_convergence=0.0001,
        **({} if prior is None else {"probability_two_random_records_match": prior}),
    )


def plan_training(conf: IdentityConf, profile: dict) -> dict[str, Any]:
    """What can be trained on records with this profile: comparisons, EM passes and prior rules on populated
    fields; raises IdentityConfigError when nothing besides names is populated enough."""
    minimum = conf.model.min_fill_rate
    populated = profiling.populated_fields(profile, minimum)
    fill = profiling.field_fill(profile)
    active = active_comparisons(populated)
    if not set(active) - {"name"}:
        filled = ", ".join(f"{k} {v:.0%}" for k, v in sorted(fill.items()))
        raise IdentityConfigError(
            "identity resolution cannot train a model: besides names it needs at least one of date of birth, "
            f"e-mail, phone, address or postcode, or national id filled in at least {minimum:.0%} of customer "
            f"records (model.min_fill_rate in conf/identity.yaml); silver.customer_records has {filled}. Map those "
            "fields in conf/sources.yaml, or lower model.min_fill_rate if they are filled but sparse")
    usable = lambda rule: profiling.rule_fields(rule) <= populated  # noqa: E731
    return {
        "comparisons": active,
        "left_out": {name: {f: fill.get(f, 0.0) for f in fields} for name, fields in profiling.COMPARISON_FIELDS.items()
                     if name not in active},
        "em_rules": [r for r in conf.model.em_blocking_rules if usable(r)],
        "em_skipped": {r: "fields not populated enough" for r in conf.model.em_blocking_rules if not usable(r)},
        "prior_rules": [r for r in conf.model.prior_rules if usable(r)],
    }


def fallback_prior(conf: IdentityConf, records: int) -> float:
    """The prior when no deterministic rule finds a pair: with r records per person on average, each record
    has r - 1 matches among the n - 1 others, so two random records match with probability (r - 1) / (n - 1)."""
    per_person = conf.model.prior_fallback_records_per_person
    return min(0.5, (per_person - 1) / max(records - 1, 1))


def _estimate_prior(linker: Linker, conf: IdentityConf, rules: list[str]) -> float:
    """The prior from the deterministic rules (0 when they find no pair or their count is implausible)."""
    if not rules:
        return 0.0
    try:
        linker.training.estimate_probability_two_random_records_match(rules, recall=conf.model.prior_recall)
    except ValueError as exc:
        # More pairs than the configured recall allows: the rules are not deterministic on these data.
        log.warning("identity: prior rules rejected (%s)", exc)
        return 0.0
    return float(linker.misc.save_model_to_json()["probability_two_random_records_match"])


def _uncovered(active: list[str], passes: list[str]) -> list[str]:
    """Comparisons no EM pass trains: every pass that ran blocks on one of the comparison's fields."""
    return [name for name in active if not any(
        not set(profiling.COMPARISON_FIELDS[name]) & profiling.rule_fields(rule) for rule in passes)]


def train(inputs, conf: IdentityConf, records: int, profile: dict) -> tuple[Linker, dict[str, Any]]:
    """Train a linker on `inputs` (a registered Splink table) adapted to `profile`: prior from deterministic rules
    or the documented fallback, u by random sampling, m by EM passes on populated fields. Returns the linker and
    what training did (comparisons, passes, prior and its source, seconds)."""
    plan = plan_training(conf, profile)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    linker = Linker(inputs, settings(conf, active=plan["comparisons"]), log_level=logging.WARNING)
    prior = _estimate_prior(linker, conf, plan["prior_rules"])
    if prior > 0:
        source = f"deterministic rules {plan['prior_rules']} at recall {conf.model.prior_recall}"
    else:
        prior = fallback_prior(conf, records)
        source = (f"fallback: model.prior_fallback_records_per_person={conf.model.prior_fallback_records_per_person} "
                  f"(no pair satisfies the populated prior rules {plan['prior_rules']})")
        log.warning("identity: prior %.3g from the %s", prior, source)
        linker = Linker(inputs, settings(conf, active=plan["comparisons"], prior=prior), log_level=logging.WARNING)
    log.info("identity: prior %.3g from %s", prior, source)
    linker.training.estimate_u_using_random_sampling(max_pairs=conf.model.u_max_pairs, seed=conf.model.seed)
    seconds["u"] = time.perf_counter() - started
    # Capping EM pairs needs a sampled pre-pass that is meaningless on small inputs.
    max_pairs = conf.model.em_max_pairs if records > 50_000 else None
    started = time.perf_counter()
    ran, skipped = [], dict(plan["em_skipped"])
    for rule in plan["em_rules"]:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True, max_pairs=max_pairs)
            ran.append(rule)
        except EMTrainingException as exc:
            # e.g. no two records share the value: the pass has nothing to learn from.
            skipped[rule] = str(exc).splitlines()[0]
            log.warning("identity: EM pass %r skipped: %s", rule, skipped[rule])
    seconds["em"] = time.perf_counter() - started
    uncovered = _uncovered(plan["comparisons"], ran)
    if uncovered:
        raise IdentityConfigError(
            f"identity resolution cannot train the comparisons {uncovered}: every EM pass that found pairs "
            f"({ran or 'none'}) blocks on their fields. Add to model.em_blocking_rules in conf/identity.yaml a "
            f"rule on other populated fields; skipped passes: {skipped}")
    return linker, {"comparisons": plan["comparisons"], "left_out": plan["left_out"], "em_passes": ran,
                    "em_skipped": skipped, "prior": prior, "prior_source": source, "seconds": seconds}


def port_parameters(trained: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Copy trained m/u values and the prior from a settings dict of one SQL dialect into another's."""
    ported = dict(target)
    ported["probability_two_random_records_match"] = trained["probability_two_random_records_match"]
    by_name = {c["output_column_name"]: c for c in trained["comparisons"]}
    comparisons_out = []
    for comparison in target["comparisons"]:
        source = by_name[comparison["output_column_name"]]
        levels = []
        for level, trained_level in zip(comparison["comparison_levels"], source["comparison_levels"], strict=True):
            levels.append({**level, **{k: trained_level[k] for k in ("m_probability", "u_probability")
                                        if k in trained_level}})
        comparisons_out.append({**comparison, "comparison_levels": levels})
    ported["comparisons"] = comparisons_out
    return ported


def settings_for(trained: dict[str, Any], conf: IdentityConf, dialect: str,
                 retain_intermediate: bool = False) -> dict[str, Any]:
    """A trained model as a settings dict for `dialect`: comparisons and blocking from code and conf, m/u trained."""
    # Regenerating keeps the SQL right for any backend and picks up blocking changes, which need no retraining;
    # the comparisons are those the model was trained with (fields too sparse to train were left out).
    active = [c["output_column_name"] for c in trained.get("comparisons", [])]
    try:
        return port_parameters(trained, settings(conf, retain_intermediate, active).create_settings_dict(dialect))
    except (KeyError, ValueError) as exc:
        raise ModelMismatchError(
            f"the stored model does not fit the comparisons in code ({exc}); retrain with --retrain") from None
