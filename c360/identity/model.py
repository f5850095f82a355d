"""The Splink model: comparisons, blocking rules, training, and porting a trained model between SQL dialects."""

from __future__ import annotations

import logging
import time
from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import Linker, SettingsCreator

from c360.identity.conf import IdentityConf

log = logging.getLogger(__name__)


class ModelMismatchError(RuntimeError):
    """The stored model was trained for other comparisons than the code defines."""

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
        cl.CustomComparison(output_column_name="national_id", comparison_description="national id", comparison_levels=[
            cll.NullLevel("national_id"), cll.ExactMatchLevel("national_id"), cll.ElseLevel()]),
    ]


def settings(conf: IdentityConf, retain_intermediate: bool = False) -> SettingsCreator:
    """Untrained Splink settings: dedupe across all source systems with the configured blocking rules."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=comparisons(),
        blocking_rules_to_generate_predictions=list(conf.blocking),
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=retain_intermediate,
        additional_columns_to_retain=["source_system"],
        max_iterations=25,
        em_convergence=0.0001,
    )


def train(linker: Linker, conf: IdentityConf, records: int) -> dict[str, float]:
    """Estimate the prior (deterministic rules), u (random sampling) and m (EM over several blocking passes)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match(list(conf.model.prior_rules),
                                                                  recall=conf.model.prior_recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=conf.model.u_max_pairs, seed=conf.model.seed)
    seconds["u"] = time.perf_counter() - started
    # Capping EM pairs needs a sampled pre-pass that is meaningless on small inputs.
    max_pairs = conf.model.em_max_pairs if records > 50_000 else None
    started = time.perf_counter()
    for rule in conf.model.em_blocking_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True, max_pairs=max_pairs)
    seconds["em"] = time.perf_counter() - started
    return seconds


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
    # Regenerating keeps the SQL right for any backend and picks up blocking changes, which need no retraining.
    try:
        return port_parameters(trained, settings(conf, retain_intermediate).create_settings_dict(dialect))
    except (KeyError, ValueError) as exc:
        raise ModelMismatchError(
            f"the stored model does not fit the comparisons in code ({exc}); retrain with --retrain") from None
