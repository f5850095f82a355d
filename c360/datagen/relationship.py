"""The relationship side: CRM interactions, campaign offers and responses, complaints, consents."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np

from c360.datagen import names
from c360.datagen.activity import landing_index
from c360.datagen.people import CHURN_CLOSED, YEAR, Persons, engagement
from c360.datagen.products import LOAN, MORT, SAV, Accounts
from c360.datagen.systems import DAY, SourceRecords, date_to_day
from c360.datagen.table import MISSING, Codes, Ids, Table, object_array

INTERACTION_CHANNELS = ("branch", "phone", "email", "chat")
COMPLAINT_CHANNELS = ("phone", "email", "branch", "web", "letter")
COMPLAINT_STATUS = ("open", "resolved", "rejected")
CONSENT_PURPOSES = ("marketing", "profiling", "fraud_prevention", "third_party_sharing")
CONSENT_GRANT_RATE = (0.6, 0.45, 1.0, 0.15)
CONSENT_CHANNELS = {"core_banking": ("branch", "phone", "web"), "cards": ("web", "phone"),
                    "digital": ("app", "web"), "crm": ("phone", "email")}
# Offer propensity: life stage (rows) x product (SAV, LOAN, MORT, CARD, INS) fit on the logit scale.
OFFER_FIT = np.array([[0.2, 0.3, -1.5, 0.7, -0.5], [0.6, 0.6, 0.9, 0.6, 0.2], [0.3, 0.8, 0.6, 0.3, 0.8],
                      [0.5, 0.1, -0.3, 0.0, 0.6], [0.4, -0.8, -2.0, -0.5, 0.4]])
OFFER_RATE = 0.12


def _uniform_times(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return lo + (rng.random(len(lo)) * np.maximum(hi - lo, 1)).astype(np.int64)


def _person_array(recs: list) -> np.ndarray:
    return np.array([x.person for x in recs], dtype=np.int64)


def interactions(contacts: list, persons: Persons, history_start: int, start_day: int, days: int,
                 rng: np.random.Generator) -> Table:
    """Branch, phone, email and chat contacts; churners call more in the months before they leave."""
    person = _person_array(contacts)
    since = np.array([x.since for x in contacts], dtype=np.int64)
    begin = np.maximum(since, history_start) * DAY
    end = np.full(len(contacts), (start_day + days) * DAY)
    base = rng.poisson(0.25 / 30.0 * (end - begin) / DAY)
    churn_day = persons.churn_day[person]
    churning = churn_day != MISSING
    c_begin = np.maximum(begin, (churn_day - 120) * DAY)
    c_end = np.minimum(end, churn_day * DAY)
    extra = np.where(churning & (c_end > c_begin), rng.poisson(1.5, len(contacts)), 0)
    owner = np.concatenate([np.repeat(np.arange(len(contacts)), base), np.repeat(np.arange(len(contacts)), extra)])
    lo = np.concatenate([np.repeat(begin, base), np.repeat(c_begin, extra)])
    hi = np.concatenate([np.repeat(end, base), np.repeat(c_end, extra)])
    ts = _uniform_times(lo, hi, rng)
    churn_extra = np.arange(len(owner)) >= base.sum()
    gone = (persons.churn_type[person[owner]] == CHURN_CLOSED) & (ts // DAY > churn_day[owner])
    keep = np.flatnonzero(~gone & (ts < (start_day + days) * DAY))
    order = keep[np.lexsort((owner[keep], ts[keep]))]
    return _interaction_table(contacts, persons, person, owner[order], ts[order], churn_extra[order],
                              start_day, rng)


def _interaction_table(contacts, persons, person, owner, ts, churn_extra, start_day, rng) -> Table:
    m = len(owner)
    ages = (ts // DAY - persons.dob[person[owner]]) / YEAR
    older = ages > 55
    channel = np.where(older, rng.choice(4, m, p=[0.4, 0.45, 0.1, 0.05]), rng.choice(4, m, p=[0.1, 0.3, 0.25, 0.35]))
    topics = [t[0] for t in names.INTERACTION_TOPICS]
    topic = rng.choice(len(topics), m, p=_probs(names.INTERACTION_TOPICS))
    leaving = [topics.index(t) for t in ("close_account", "complaint", "fees")]
    topic = np.where(churn_extra, rng.choice(leaving, m), topic)
    outcome = rng.choice(len(names.INTERACTION_OUTCOMES), m, p=_probs(names.INTERACTION_OUTCOMES))
    columns = {
        "interaction_id": Ids("INT%09d", 100_000_000 + np.arange(m, dtype=np.int64)),
        "contact_id": object_array([x.rid for x in contacts])[owner],
        "channel": Codes(INTERACTION_CHANNELS, channel),
        "topic": Codes(tuple(topics), topic),
        "outcome": Codes(tuple(o[0] for o in names.INTERACTION_OUTCOMES), outcome),
        "interaction_at": ts,
    }
    return Table(columns, landing_index(ts, start_day))


def _probs(pairs) -> np.ndarray:
    w = np.array([p[1] for p in pairs], dtype=float)
    return w / w.sum()


def holdings(persons: Persons, core: Accounts, cards: Accounts, day: int) -> np.ndarray:
    """Person x (SAV, LOAN, MORT, CARD, INS) holding flags on absolute `day`."""
    held = np.zeros((persons.n, 5), dtype=bool)
    live = (core.opened <= day) & ((core.closed == MISSING) | (core.closed > day))
    for col, product in enumerate((SAV, LOAN, MORT)):
        held[core.person[live & (core.product == product)], col] = True
    card_live = (cards.opened <= day) & ((cards.closed == MISSING) | (cards.closed > day))
    held[cards.person[card_live], 3] = True
    held[:, 4] = persons.has_insurance
    return held


def campaign_months(start: dt.date, days: int, history_months: int) -> list[dt.date]:
    """First days of the campaign months: `history_months` back from `start` to the last landing day."""
    last = start + dt.timedelta(days=days - 1)
    month = start.replace(day=1)
    for _ in range(history_months):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    out = []
    while month <= last:
        out.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return out


def offers(contacts: list, persons: Persons, held: np.ndarray, start: dt.date, days: int,
           history_months: int, rng: np.random.Generator) -> tuple[Table, Table, dict]:
    """Monthly campaigns; acceptance is logistic in life stage, holdings, engagement and channel."""
    start_day = date_to_day(start)
    end_ts = (start_day + days) * DAY
    person = _person_array(contacts)
    since = np.array([x.since for x in contacts], dtype=np.int64)
    parts = []
    for month in campaign_months(start, days, history_months):
        first = date_to_day(month)
        for product in rng.choice(5, size=2, replace=False).tolist():
            chosen = np.flatnonzero(rng.random(len(contacts)) < OFFER_RATE)
            ts = (first + rng.integers(0, 28, len(chosen))) * DAY + rng.integers(9 * 3600, 18 * 3600, len(chosen))
            ok = (ts < end_ts) & (since[chosen] * DAY < ts) & (engagement(persons, person[chosen], ts // DAY) > 0)
            campaign = f"CMP-{month:%Y%m}-{names.OFFER_PRODUCTS[product]}"
            parts.append((chosen[ok], ts[ok], np.full(ok.sum(), product), campaign))
    owner = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    product = np.concatenate([p[2] for p in parts])
    campaign = np.concatenate([np.full(len(p[0]), p[3], dtype=object) for p in parts])
    order = np.lexsort((owner, ts))
    owner, ts, product, campaign = owner[order], ts[order], product[order], campaign[order]
    channel = rng.integers(0, len(names.OFFER_CHANNELS), len(owner))
    p_accept = _acceptance(persons, person[owner], held, product, channel, ts)
    ids = 100_000_000 + np.arange(len(owner), dtype=np.int64)
    offer_table = Table({
        "offer_id": Ids("OF%09d", ids), "contact_id": object_array([x.rid for x in contacts])[owner],
        "campaign_id": campaign, "product_code": Codes(names.OFFER_PRODUCTS, product),
        "channel": Codes(names.OFFER_CHANNELS, channel), "offered_at": ts,
    }, landing_index(ts, start_day))
    responses, labels = _responses(ids, ts, p_accept, end_ts, start_day, rng)
    labels.update({"person_id": [persons.ids[p] for p in person[owner].tolist()],
                   "product_code": [names.OFFER_PRODUCTS[x] for x in product.tolist()]})
    return offer_table, responses, labels


def _acceptance(persons: Persons, person: np.ndarray, held: np.ndarray, product: np.ndarray,
                channel: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """True acceptance probability of each offer (hidden; it goes to the truth folder)."""
    stage = persons.life_stage[person]
    affinity = persons.affinity[person]
    digital = np.isin(channel, [0, 1, 2])
    logit = (-2.3 + OFFER_FIT[stage, product]
             + np.where(digital, 1.4 * (affinity - 0.5), 0.3)
             + 0.25 * persons.income[person]
             - 1.8 * held[person, product]
             - 1.2 * (engagement(persons, person, ts // DAY) < 0.8))
    return 1.0 / (1.0 + np.exp(-logit))


def _responses(ids, offered, p_accept, end_ts, start_day, rng) -> tuple[Table, dict]:
    n = len(ids)
    accepted = rng.random(n) < p_accept
    declined = ~accepted & (rng.random(n) < 0.55)
    delay = 600 + np.minimum(rng.exponential(2.5 * DAY, n), 30 * DAY).astype(np.int64)
    at = offered + delay
    answered = (accepted | declined) & (at < end_ts)
    idx = np.flatnonzero(answered)
    idx = idx[np.argsort(at[idx], kind="stable")]
    table = Table({"offer_id": Ids("OF%09d", ids[idx]), "response": Codes(("declined", "accepted"), accepted[idx].astype(np.int64)),
                   "responded_at": at[idx]}, landing_index(at[idx], start_day))
    outcome = np.where(answered, np.where(accepted, "accepted", "declined"), "none")
    labels = {"offer_id": ["OF%09d" % x for x in ids.tolist()],
              "p_accept": np.round(p_accept, 4).tolist(), "outcome": outcome.tolist()}
    return table, labels


def _complaint_refs(persons: Persons, records: SourceRecords) -> tuple[list, list, list]:
    people, systems, refs = [], [], []
    for p in range(persons.n):
        held = records.by_person.get(p, ())
        ref = next((x for x in held if x.system == "core_banking"), None) or \
            next((x for x in held if x.system == "cards"), None)
        if ref is not None:
            people.append(p)
            systems.append(ref.system)
            refs.append(ref)
    return people, systems, refs


def complaints(persons: Persons, records: SourceRecords, history_start: int, start_day: int, days: int,
               rng: np.random.Generator, pyr: random.Random) -> Table:
    """Complaint cases; churners complain more; open cases land again on the day they are closed."""
    people, systems, refs = _complaint_refs(persons, records)
    person = np.array(people, dtype=np.int64)
    since = np.array([x.since for x in refs], dtype=np.int64)
    end = (start_day + days) * DAY
    begin = np.maximum(since, history_start) * DAY
    base = rng.poisson(0.04 * (end - begin) / DAY / YEAR)
    churn_day = persons.churn_day[person]
    c_begin = np.maximum(begin, (churn_day - 150) * DAY)
    c_end = np.minimum(end, churn_day * DAY)
    extra = np.where((churn_day != MISSING) & (c_end > c_begin), rng.poisson(0.6, len(person)), 0)
    owner = np.concatenate([np.repeat(np.arange(len(person)), base), np.repeat(np.arange(len(person)), extra)])
    received = _uniform_times(np.concatenate([np.repeat(begin, base), np.repeat(c_begin, extra)]),
                              np.concatenate([np.repeat(np.full(len(person), end), base), np.repeat(c_end, extra)]), rng)
    order = np.lexsort((owner, received))
    owner, received = owner[order], received[order]
    m = len(owner)
    resolved = received + (rng.lognormal(np.log(9.0), 0.9, m) * DAY).astype(np.int64)
    final = np.where(rng.random(m) < 0.82, 1, 2)
    compensation = np.where((final == 1) & (rng.random(m) < 0.35), np.round(rng.lognormal(np.log(60), 0.8, m), 2), 0.0)
    category = rng.integers(0, len(names.COMPLAINT_CATEGORIES), m)
    text = [_description(names.COMPLAINT_CATEGORIES[c], persons.address[person[o]].city, pyr)
            for c, o in zip(category.tolist(), owner.tolist())]
    case = {"id": 1_000_000 + np.arange(m, dtype=np.int64), "system": np.array(systems, dtype=object)[owner],
            "ref": object_array([refs[o].rid for o in owner.tolist()]), "received": received,
            "category": category, "channel": rng.integers(0, len(COMPLAINT_CHANNELS), m),
            "text": object_array(text), "final": final, "resolved": resolved, "compensation": compensation}
    return _complaint_versions(case, start_day, days)


def _complaint_versions(case: dict, start_day: int, days: int) -> Table:
    """One row on the day a case is received and another on the day it is closed, if that differs."""
    recv_day = landing_index(case["received"], start_day)
    done_day = landing_index(case["resolved"], start_day)
    end = (start_day + days) * DAY
    closes_later = (done_day > recv_day) & (case["resolved"] < end)
    first_idx = np.arange(len(recv_day))
    rows = np.concatenate([first_idx, np.flatnonzero(closes_later)])
    day = np.concatenate([recv_day, done_day[closes_later]])
    as_of = (np.concatenate([recv_day, done_day[closes_later]]) + start_day + 1) * DAY
    is_closed = case["resolved"][rows] < as_of
    order = np.lexsort((rows, day))
    rows, day, is_closed = rows[order], day[order], is_closed[order]
    columns = {
        "complaint_id": Ids("CPL%07d", case["id"][rows]), "customer_ref_system": case["system"][rows],
        "customer_ref": case["ref"][rows], "received_at": case["received"][rows],
        "category": Codes(names.COMPLAINT_CATEGORIES, case["category"][rows]),
        "channel": Codes(COMPLAINT_CHANNELS, case["channel"][rows]), "description": case["text"][rows],
        "status": Codes(COMPLAINT_STATUS, np.where(is_closed, case["final"][rows], 0)),
        "resolved_at": np.where(is_closed, case["resolved"][rows], MISSING),
        "compensation_amount": np.where(is_closed, case["compensation"][rows], np.nan),
        "currency": Codes(("GBP",), np.zeros(len(rows), dtype=np.int64)),
    }
    return Table(columns, day)


def _description(category: str, city: str, pyr: random.Random) -> str:
    text = pyr.choice(names.COMPLAINT_TEMPLATES[category]).format(
        fee=pyr.choice(names.FEE_NAMES), amount=f"£{pyr.uniform(5, 400):.2f}",
        product=pyr.choice(names.PRODUCT_NAMES), city=city, n=pyr.randint(2, 45),
        when=f"{pyr.randint(1, 28)} {pyr.choice(('January', 'March', 'May', 'July', 'September', 'November'))}")
    if pyr.random() < 0.3:
        # Customers write in paragraphs; the JSON export keeps the newline, escaped.
        text += "\n" + pyr.choice(names.COMPLAINT_FOLLOW_UPS)
    return text


def consents(persons: Persons, records: SourceRecords, start_day: int, days: int,
             pyr: random.Random) -> Table:
    """Consent grants per purpose at onboarding and later withdrawals, each against a real record id."""
    end = (start_day + days) * DAY
    rows = []
    for p in range(persons.n):
        held = records.by_person.get(p)
        if not held:
            continue
        core = [x for x in held if x.system == "core_banking"]
        ref = core[0] if core and pyr.random() < 0.7 else pyr.choice(held)
        granted_at = ref.since * DAY + pyr.randint(8 * 3600, 20 * 3600)
        churner = persons.churn_day[p] != MISSING
        for purpose, rate in zip(CONSENT_PURPOSES, CONSENT_GRANT_RATE):
            if pyr.random() >= rate:
                continue
            channel = pyr.choice(CONSENT_CHANNELS[ref.system])
            rows.append((granted_at, ref.system, ref.rid, purpose, "granted", channel))
            if purpose != "fraud_prevention" and pyr.random() < (0.35 if churner else 0.1):
                withdrawn = granted_at + int(pyr.random() * (end - granted_at))
                rows.append((withdrawn, ref.system, ref.rid, purpose, "withdrawn", channel))
        digital = [x for x in held if x.system == "digital"]
        if digital and pyr.random() < 0.15:
            rows.append((max(digital[0].registered, granted_at) + 60, "digital", digital[0].rid,
                         "marketing", "granted", "app"))
    rows = [r for r in rows if r[0] < end]
    rows.sort(key=lambda r: (r[0], r[2], r[3], r[4]))
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    columns = {
        "consent_id": Ids("CNS%09d", 100_000_000 + np.arange(len(rows), dtype=np.int64)),
        "customer_ref_system": object_array([r[1] for r in rows]),
        "customer_ref": object_array([r[2] for r in rows]),
        "purpose": object_array([r[3] for r in rows]), "status": object_array([r[4] for r in rows]),
        "recorded_at": ts, "channel": object_array([r[5] for r in rows]),
    }
    return Table(columns, landing_index(ts, start_day))
