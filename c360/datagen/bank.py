"""Generate the synthetic bank: landing files as sources.yaml prescribes, and the ground truth behind them."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import os
import random
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from c360.datagen import activity, names, products, relationship
from c360.datagen.contract import Contract, FeedSpec, load_contract
from c360.datagen.people import CHURN_TYPES, Persons, draw_life_events, make_persons
from c360.datagen.systems import (CUSTOMER_FEEDS, DEFAULT_VARIANT, DUPLICATE_RATE, SYSTEMS, SourceRecords,
                                  SourceVariant, add_new_person_records, apply_day_events, build_initial_records,
                                  date_to_day, day_to_date, render_records)
from c360.datagen.table import MISSING, Codes, Table, concat_tables, format_rows
from c360.datagen.writer import FeedWriter

log = logging.getLogger(__name__)

CHUNK_ROWS = 200_000
SIMULATED_FEEDS = frozenset({
    ("core_banking", "customers"), ("core_banking", "accounts"), ("core_banking", "balances"),
    ("cards", "customers"), ("cards", "accounts"), ("cards", "transactions"),
    ("digital", "profiles"), ("digital", "events"), ("crm", "contacts"), ("crm", "interactions"),
    ("crm", "offers"), ("crm", "offer_responses"), ("complaints", "cases"), ("consent", "records"),
})
TRUTH_ENTRIES = ("manifest.json", "records.csv", "bad_rows.csv", "persons.csv", "labels")


@dataclass(frozen=True)
class DatagenParams:
    """Size, seed and time span of a generated bank."""

    customers: int = 2000
    seed: int = 42
    start_date: dt.date = dt.date(2026, 10, 1)
    days: int = 3
    bad_row_rate: float = 0.002
    history_months: int = 12

    def __post_init__(self):
        if self.customers < 1 or self.days < 1 or self.history_months < 1:
            raise ValueError(f"customers, days and history_months must be positive: {self}")
        if not 0.0 <= self.bad_row_rate <= 1.0:
            raise ValueError(f"bad_row_rate must lie in [0, 1]: {self.bad_row_rate}")


@dataclass
class Bank:
    """The hidden truth of a simulation; feed tables go to the landing writer as they are built."""

    persons: Persons
    records: SourceRecords
    fraud_cases: list
    cards: products.Accounts
    txn_labels: dict
    offer_labels: dict


def _rng(seed: int, stream: str) -> np.random.Generator:
    # One named stream per step, so changing one step never shifts another step's draws.
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _pyr(seed: int, stream: str) -> random.Random:
    return random.Random(f"{seed}:{stream}")


def _customer_tables(params: DatagenParams, persons: Persons, start_day: int, emit,
                     variant: SourceVariant = DEFAULT_VARIANT) -> SourceRecords:
    """Source customer records day by day: the initial extract, then changed and new records."""
    duplicates = 0.0 if variant.one_record_per_system else DUPLICATE_RATE
    records = build_initial_records(persons, start_day, _pyr(params.seed, "records"), duplicates)

    def render(system: str, recs: list, day: int):
        return render_records(system, recs, day, variant, params.seed)

    per_system = {s: [render(s, records.by_system[s], 0)] for s in SYSTEMS}
    events_rng, events_pyr = _rng(params.seed, "life-events"), _pyr(params.seed, "life-events")
    for d in range(1, params.days):
        events = draw_life_events(persons, d, start_day, events_rng, events_pyr)
        changed = apply_day_events(records, persons, events, d, start_day, events_pyr)
        created = add_new_person_records(records, persons, d, start_day, events_pyr)
        for system in SYSTEMS:
            todays = [x for x in changed + created if x.system == system]
            per_system[system].append(render(system, todays, d))
    for system in SYSTEMS:
        emit(system, CUSTOMER_FEEDS[system], concat_tables(per_system[system]))
    return records


def simulate(params: DatagenParams, emit, tick=lambda _step: None, variant: SourceVariant = DEFAULT_VARIANT) -> Bank:
    """Run the simulation; each feed table goes to `emit(system, feed, table)` as soon as it is built.

    `variant` changes only what the customer feeds show (fields dropped or degraded, no duplicates):
    the persons, products and activity behind them are the default bank's."""
    start_day, days, seed = date_to_day(params.start_date), params.days, params.seed
    persons = make_persons(params.customers, start_day, days, _rng(seed, "persons"), _pyr(seed, "persons"))
    tick("persons")
    records = _customer_tables(params, persons, start_day, emit, variant)
    tick("customer records")
    core = products.build_core_accounts(records.by_system["core_banking"], persons, start_day, days,
                                        _rng(seed, "core-accounts"))
    cards = products.build_card_accounts(records.by_system["cards"], persons, start_day, days,
                                         _rng(seed, "card-accounts"))
    profiles = records.by_system["digital"]
    profile_of: dict = {}
    for i, rec in enumerate(profiles):
        profile_of.setdefault(rec.person, i)
    has_digital = np.zeros(persons.n, dtype=bool)
    has_digital[list(profile_of)] = True
    cases = activity.plan_fraud(cards, persons, has_digital, start_day, days, _rng(seed, "fraud"))
    emit("core_banking", "accounts", products.account_table(core, start_day, days, "core"))
    emit("core_banking", "balances", products.balance_table(
        core, persons, params.start_date, days, params.history_months, _rng(seed, "balances")))
    emit("cards", "accounts", products.account_table(cards, start_day, days, "cards"))
    tick("accounts and balances")
    transactions, txn_labels = activity.card_transactions(cards, persons, cases, start_day, days,
                                                          _rng(seed, "transactions"))
    emit("cards", "transactions", transactions)
    del transactions
    takeovers = activity.takeover_logins(cases, cards, profile_of)
    emit("digital", "events", activity.digital_events(profiles, persons, takeovers, start_day, days,
                                                      _rng(seed, "events")))
    tick("transactions and events")
    offer_labels = _relationship(params, persons, records, core, cards, emit)
    tick("relationship")
    return Bank(persons, records, cases, cards, txn_labels, offer_labels)


def _relationship(params: DatagenParams, persons, records, core, cards, emit) -> dict:
    start_day, days, seed = date_to_day(params.start_date), params.days, params.seed
    history_start = date_to_day(relationship.campaign_months(params.start_date, 1, params.history_months)[0])
    contacts = records.by_system["crm"]
    emit("crm", "interactions", relationship.interactions(
        contacts, persons, history_start, start_day, days, _rng(seed, "interactions")))
    held = relationship.holdings(persons, core, cards, start_day)
    offers, responses, labels = relationship.offers(contacts, persons, held, params.start_date, days,
                                                    params.history_months, _rng(seed, "offers"))
    emit("crm", "offers", offers)
    emit("crm", "offer_responses", responses)
    emit("complaints", "cases", relationship.complaints(
        persons, records, history_start, start_day, days, _rng(seed, "complaints"), _pyr(seed, "complaints")))
    emit("consent", "records", relationship.consents(persons, records, start_day, days, _pyr(seed, "consents")))
    return labels


def _align(spec: FeedSpec, table: Table) -> Table:
    """Check a generated table against the contract: every required column present, codes allowed."""
    columns = dict(table.columns)
    for col in spec.columns:
        if col.name not in columns:
            if col.required:
                raise ValueError(f"{spec.system}.{spec.feed}: generator has no required column {col.name}")
            log.warning("%s.%s: no generated values for %s; writing nulls", spec.system, spec.feed, col.name)
            columns[col.name] = np.full(len(table), None, dtype=object)
        value = columns[col.name]
        if col.allowed is not None and isinstance(value, Codes) and len(value.codes):
            used = {value.labels[i] for i in np.unique(value.codes).tolist()}
            outside = sorted(used - set(col.allowed))
            if outside:
                raise ValueError(f"{spec.system}.{spec.feed}.{col.name}: {outside} not in the contract domain")
    return Table(columns, table.day)


class LandingWriter:
    """Writes each feed's files the moment its table exists, so big tables never pile up in memory."""

    def __init__(self, contract: Contract, params: DatagenParams, root: Path, tick):
        self.contract, self.params, self.root, self.tick = contract, params, root, tick
        self.entries: dict = {}
        self.bad: dict = {}

    def emit(self, system: str, feed: str, table: Table) -> None:
        """Write `table` as one file per landing date."""
        if (system, feed) not in self.contract.feeds:
            log.warning("sources.yaml has no %s.%s; not writing it", system, feed)
            return
        spec = self.contract.feed(system, feed)
        table = _align(spec, table)
        params = self.params
        for d in range(params.days):
            landing_date = params.start_date + dt.timedelta(days=d)
            rng = _rng(params.seed, f"bad-rows:{system}:{feed}:{d}")
            writer = FeedWriter(spec, self.root, landing_date, rng, params.bad_row_rate)
            rows = table.rows_for(d)
            for begin in range(0, len(rows), CHUNK_ROWS):
                writer.write(format_rows(spec, table.take(rows[begin:begin + CHUNK_ROWS])))
            self.entries[(system, feed, d)] = writer.close()
            self.bad[(system, feed, d)] = writer.bad
            self.tick(f"{system}/{feed} {landing_date}")

    def finish(self) -> tuple[list, list]:
        """Manifest entries and bad rows in contract order; fails if a contract feed was never written."""
        ordered = [(s, f, d) for s, f in self.contract.feeds for d in range(self.params.days)]
        missing = sorted({f"{s}.{f}" for s, f, d in ordered if (s, f, d) not in self.entries})
        if missing:
            raise ValueError(f"sources.yaml lists feeds the generator does not simulate: {missing}")
        return [self.entries[k] for k in ordered], [b for k in ordered for b in self.bad[k]]


def _write_csv(path: Path, header: list, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(header)
        out.writerows(rows)


def _iso_day(day: int) -> str:
    return "" if day == MISSING else day_to_date(day).isoformat()


def _persons_rows(persons: Persons, records: SourceRecords):
    for p in range(persons.n):
        addr = persons.address[p]
        systems = "|".join(s for s in SYSTEMS if persons.systems[s][p])
        yield (persons.ids[p], persons.first[p], persons.middle[p] or "", persons.last[p],
               persons.birth_last[p], persons.gender[p], _iso_day(int(persons.dob[p])), persons.email[p],
               "0" + persons.phone[p], addr.line1, addr.city, addr.postcode, persons.national_id[p],
               persons.household[p], names.LIFE_STAGES[persons.life_stage[p]],
               names.INCOME_BANDS[persons.income[p]], f"{persons.affinity[p]:.3f}",
               _iso_day(int(persons.since[p])), int(persons.born_day[p]), persons.look_alike_of[p] or "",
               persons.namesake_of[p] or "", systems, int(persons.has_insurance[p]),
               len(records.by_person.get(p, ())))


PERSON_COLUMNS = ["person_id", "first_name", "middle_name", "last_name", "birth_last_name", "gender",
                  "date_of_birth", "email", "phone", "address_line1", "city", "postcode", "national_id",
                  "household_id", "life_stage", "income_band", "digital_affinity", "customer_since",
                  "first_landing_day", "look_alike_of", "namesake_of", "systems", "has_insurance",
                  "source_records"]


def write_truth(bank: Bank, bad: list, root: Path) -> None:
    """Ground truth: persons, record ownership, bad rows and the hidden labels."""
    persons, records = bank.persons, bank.records
    _write_csv(root / "persons.csv", PERSON_COLUMNS, _persons_rows(persons, records))
    _write_csv(root / "records.csv", ["system", "record_id", "person_id"],
               ((s, x.rid, persons.ids[x.person]) for s in SYSTEMS
                for x in sorted(records.by_system[s], key=lambda r: r.rid)))
    _write_csv(root / "bad_rows.csv", ["system", "feed", "file", "record_no", "key", "reason", "field"],
               ((b.system, b.feed, b.file, b.record_no, b.key, b.reason, b.field) for b in bad))
    _write_csv(root / "labels" / "churn.csv", ["person_id", "is_churner", "churn_date", "churn_type"],
               ((persons.ids[p], int(persons.churn_day[p] != MISSING), _iso_day(int(persons.churn_day[p])),
                 CHURN_TYPES[persons.churn_type[p]]) for p in range(persons.n)))
    _write_csv(root / "labels" / "fraud_transactions.csv", ["txn_id", "fraud_pattern"],
               zip(bank.txn_labels["txn_id"], bank.txn_labels["fraud_pattern"]))
    cards = bank.cards
    _write_csv(root / "labels" / "fraud_accounts.csv",
               ["card_account_id", "person_id", "fraud_pattern", "compromised_at", "blocked_date"],
               (("CA%09d" % cards.number[c.account], persons.ids[int(cards.person[c.account])],
                 activity.FRAUD_PATTERNS[c.pattern],
                 dt.datetime.fromtimestamp(c.start_ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 _iso_day(c.blocked_day)) for c in bank.fraud_cases))
    labels = bank.offer_labels
    _write_csv(root / "labels" / "offers.csv", ["offer_id", "person_id", "product_code", "p_accept", "outcome"],
               zip(labels["offer_id"], labels["person_id"], labels["product_code"], labels["p_accept"],
                   labels["outcome"]))


def _check_paths(landing: Path, truth: Path) -> None:
    if landing == truth or truth.is_relative_to(landing) or landing.is_relative_to(truth):
        raise ValueError(f"truth ({truth}) and landing ({landing}) must not contain each other")


def _publish(stage: Path, target: Path, entries) -> None:
    """Swap staged entries into `target`, replacing what an earlier run left there."""
    target.mkdir(parents=True, exist_ok=True)
    for name in entries:
        src, dst = stage / name, target / name
        if not src.exists():
            continue
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        elif dst.exists() or dst.is_symlink():
            dst.unlink()
        os.replace(src, dst)


def generate_bank(params: DatagenParams, landing: Path, truth: Path, sources_yaml: Path,
                  progress: bool = False, variant: SourceVariant | None = None) -> dict:
    """Write landing files and ground truth; return the manifest dict (also written to truth/manifest.json).

    `variant` (c360.datagen.SourceVariant) drops or degrades customer fields per system; it is kept
    apart from DatagenParams, whose fields mirror conf's `datagen` section."""
    variant = variant or DEFAULT_VARIANT
    landing, truth = Path(landing).resolve(), Path(truth).resolve()
    _check_paths(landing, truth)
    contract = load_contract(sources_yaml)
    unknown = sorted(f"{s}.{f}" for s, f in set(contract.feeds) - SIMULATED_FEEDS)
    if unknown:
        raise ValueError(f"sources.yaml lists feeds the generator does not simulate: {unknown}")
    steps = 5 + len(contract.feeds) * params.days
    bar = tqdm(total=steps, desc="datagen", unit="step", disable=not progress)

    def tick(step: str) -> None:
        """Advance the progress bar past `step`."""
        bar.set_postfix_str(step, refresh=False)
        bar.update(1)

    stage_landing = landing.parent / f".{landing.name}.datagen-tmp"
    stage_truth = truth.parent / f".{truth.name}.datagen-tmp"
    for stage in (stage_landing, stage_truth):
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
    try:
        landing_writer = LandingWriter(contract, params, stage_landing, tick)
        bank = simulate(params, landing_writer.emit, tick, variant)
        entries, bad = landing_writer.finish()
        write_truth(bank, bad, stage_truth)
        manifest = _manifest(params, sources_yaml, entries, variant)
        (stage_truth / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _publish(stage_landing, landing, sorted({system for system, _ in contract.feeds}))
        _publish(stage_truth, truth, TRUTH_ENTRIES)
    finally:
        bar.close()
        shutil.rmtree(stage_landing, ignore_errors=True)
        shutil.rmtree(stage_truth, ignore_errors=True)
    log.info("generated %d persons, %d files, %d records (%d bad)", bank.persons.n, len(entries),
             manifest["totals"]["records"], manifest["totals"]["bad"])
    return manifest


def _manifest(params: DatagenParams, sources_yaml: Path, entries: list,
              variant: SourceVariant = DEFAULT_VARIANT) -> dict:
    raw_params = asdict(params)
    raw_params["start_date"] = params.start_date.isoformat()
    # Only a non-default variant is recorded, so the default bank's manifest is as it always was.
    extra = {} if variant.is_default else {"variant": asdict(variant)}
    return {
        "params": raw_params,
        **extra,
        "sources_sha256": hashlib.sha256(Path(sources_yaml).read_bytes()).hexdigest(),
        "totals": {"files": len(entries), "records": sum(e["records"] for e in entries),
                   "bad": sum(e["bad"] for e in entries)},
        "files": entries,
    }
