"""Day-to-day activity: card transactions (with hidden fraud) and digital banking events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from c360.datagen import names
from c360.datagen.people import Persons, engagement
from c360.datagen.products import Accounts, block_cards
from c360.datagen.systems import DAY
from c360.datagen.table import MISSING, Codes, Ids, Table

HISTORY_DAYS = 60
TXN_CHANNELS = ("POS", "ECOM", "ATM", "CONTACTLESS")
POS, ECOM, ATM, CONTACTLESS = range(4)
TXN_CURRENCIES = ("GBP", "EUR", "USD", "CHF", "SEK", "NOK", "DKK", "PLN", "CAD", "AUD", "JPY")
COUNTRIES = ("GB",) + tuple(t[0] for t in names.TRAVEL) + names.UNUSUAL_COUNTRIES
MCCS = tuple(dict.fromkeys([m[0] for m in names.MERCHANTS]
                           + [c for codes in names.FRAUD_MCC.values() for c in codes]))
FRAUD_PATTERNS = ("", "card_testing", "account_takeover", "unusual_mcc")
EVENT_TYPES = ("login", "logout", "payment", "password_reset", "new_device")
LOGIN, LOGOUT, PAYMENT, RESET, NEW_DEVICE = range(5)
DIGITAL_CHANNELS = ("app", "web")
FRAUD_ACCOUNT_RATE = 0.003


@dataclass
class Activity:
    """Columns of generated activity before ids and ordering are fixed."""

    owner: np.ndarray
    ts: np.ndarray
    columns: dict


@dataclass
class FraudCase:
    """One compromised card account and the transactions the fraudster made on it."""

    account: int
    pattern: int
    start_ts: int
    country: int
    burst: tuple
    blocked_day: int


def _time_of_day(n: int, rng: np.random.Generator) -> np.ndarray:
    daytime = np.clip(rng.normal(13.5 * 3600, 3.5 * 3600, n), 6 * 3600, 86399)
    anytime = rng.uniform(0, 86399, n)
    return np.where(rng.random(n) < 0.88, daytime, anytime).astype(np.int64)


def _window(start_day: int, days: int) -> np.ndarray:
    return np.arange(start_day - HISTORY_DAYS + 1, start_day + days, dtype=np.int64)


def _daily_counts(rate: np.ndarray, person: np.ndarray, begin: np.ndarray, end: np.ndarray,
                  persons: Persons, window: np.ndarray, rng: np.random.Generator) -> tuple:
    """Poisson counts per (row, day), zero outside [begin, end) and faded by churn engagement."""
    grid = window[None, :]
    live = (begin[:, None] <= grid) & (grid < end[:, None])
    fade = engagement(persons, np.repeat(person, len(window)), np.tile(window, len(person)))
    lam = rate[:, None] * live * fade.reshape(len(person), len(window))
    counts = rng.poisson(lam)
    rows, cols = np.nonzero(counts)
    reps = counts[rows, cols]
    return np.repeat(rows, reps), np.repeat(window[cols], reps)


def plan_fraud(cards: Accounts, persons: Persons, has_digital: np.ndarray, start_day: int, days: int,
               rng: np.random.Generator) -> list[FraudCase]:
    """Compromise ~0.3% of card accounts with one pattern each; the bank blocks the card afterwards."""
    n = len(cards)
    count = int(round(FRAUD_ACCOUNT_RATE * n))
    count = max(count, 1) if n >= 100 else count
    first, last = start_day - HISTORY_DAYS + 10, start_day + days - 1
    end = np.where(cards.closed == MISSING, last + 1, cards.closed)
    candidates = np.flatnonzero((cards.opened < first) & (end > last))
    chosen = rng.choice(candidates, size=min(count, len(candidates)), replace=False)
    unusual = [COUNTRIES.index(c) for c in names.UNUSUAL_COUNTRIES]
    cases = []
    for row in np.sort(chosen).tolist():
        day = int(rng.integers(first, last + 1))
        pattern = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
        if pattern == 2 and not has_digital[cards.person[row]]:
            pattern = 3
        case = FraudCase(row, pattern, day * DAY + int(rng.integers(0, 80000)),
                         int(rng.choice(unusual)), (), 0)
        case.burst = _fraud_burst(case, rng)
        case.blocked_day = int(case.burst[0].max()) // DAY + int(rng.integers(1, 3))
        cases.append(case)
    if cases:
        block_cards(cards, np.array([c.account for c in cases]), np.array([c.blocked_day for c in cases]))
    return cases


def _legit_transactions(cards: Accounts, persons: Persons, start_day: int, days: int,
                        rng: np.random.Generator) -> Activity:
    n = len(cards)
    rate = np.array([0.45, 0.75, 1.0, 1.3])[persons.income[cards.person]] * rng.lognormal(0, 0.5, n)
    stop = np.where(cards.closed == MISSING, np.iinfo(np.int64).max, cards.closed)
    stop = np.where(cards.dormant == MISSING, stop, np.minimum(stop, cards.dormant))
    owner, day = _daily_counts(rate, cards.person, cards.opened, stop, persons,
                               _window(start_day, days), rng)
    m = len(owner)
    mcc_idx = rng.choice(len(names.MERCHANTS), size=m, p=_weights([x[1] for x in names.MERCHANTS]))
    median = np.array([x[2] for x in names.MERCHANTS])[mcc_idx]
    sigma = np.array([x[3] for x in names.MERCHANTS])[mcc_idx]
    kind = np.array([x[4] for x in names.MERCHANTS])[mcc_idx]
    gbp = np.round(rng.lognormal(np.log(median), sigma), 2)
    gbp = np.where(kind == "atm", np.maximum(np.round(gbp / 10.0) * 10.0, 10.0), np.maximum(gbp, 0.5))
    travel = rng.beta(0.5, 15.0, n)[owner]
    abroad = rng.random(m) < travel
    dest = rng.choice(len(names.TRAVEL), size=m, p=_weights([t[3] for t in names.TRAVEL]))
    local = abroad & (rng.random(m) < 0.8)
    rate_fx = np.where(local, np.array([t[2] for t in names.TRAVEL])[dest], 1.0)
    cur_code = np.array([TXN_CURRENCIES.index(t[1]) for t in names.TRAVEL])[dest]
    channel = np.select([kind == "atm", kind == "online"], [ATM, ECOM],
                        default=np.where((gbp <= 100) & (rng.random(m) < 0.65), CONTACTLESS,
                                         np.where(rng.random(m) < 0.12, ECOM, POS)))
    columns = {
        "amount": np.round(gbp * rate_fx, 2),
        "currency": np.where(local, cur_code, 0),
        "merchant_category": np.array([MCCS.index(x[0]) for x in names.MERCHANTS])[mcc_idx],
        "merchant_country": np.where(abroad, 1 + dest, 0),
        "channel": channel,
        "fraud": np.zeros(m, dtype=np.int64),
    }
    return Activity(owner, day * DAY + _time_of_day(m, rng), columns)


def _weights(values) -> np.ndarray:
    w = np.asarray(values, dtype=float)
    return w / w.sum()


def _fraud_burst(case: FraudCase, rng: np.random.Generator) -> tuple:
    """Timestamps, amounts, MCC, country, currency and channel codes of one case's transactions."""
    unusual = [COUNTRIES.index(c) for c in names.UNUSUAL_COUNTRIES]
    mccs = [MCCS.index(c) for c in names.FRAUD_MCC[FRAUD_PATTERNS[case.pattern]]]
    if case.pattern == 1:
        k = int(rng.integers(5, 16))
        ts = case.start_ts + np.cumsum(rng.integers(20, 180, k))
        amount = np.round(rng.uniform(0.5, 3.0, k), 2)
        country = np.where(rng.random(k) < 0.5, 0, rng.choice(unusual, k))
        channel = np.full(k, ECOM)
    elif case.pattern == 2:
        k = int(rng.integers(2, 6))
        ts = case.start_ts + 600 + np.sort(rng.integers(0, 2 * DAY, k))
        amount = np.round(rng.uniform(300, 2500, k), 2)
        country = np.full(k, case.country)
        channel = np.full(k, ECOM)
    else:
        k = int(rng.integers(3, 7))
        ts = case.start_ts + np.sort(rng.integers(0, 3 * DAY, k))
        amount = np.round(rng.uniform(150, 1500, k), 2)
        country = np.zeros(k, dtype=np.int64)
        channel = np.where(rng.random(k) < 0.7, ECOM, POS)
    currency = np.where(country == 0, 0, TXN_CURRENCIES.index("USD"))
    return ts, amount, rng.choice(mccs, k), country, currency, channel


def _fraud_transactions(cases: list[FraudCase]) -> Activity:
    parts = []
    for case in cases:
        ts, amount, mcc, country, currency, channel = case.burst
        parts.append((np.full(len(ts), case.account), ts, amount, mcc, country, currency, channel,
                      np.full(len(ts), case.pattern)))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        parts = [(empty,) * 8]
    cols = [np.concatenate([p[i] for p in parts]) for i in range(8)]
    columns = {"amount": cols[2].astype(float), "currency": cols[5], "merchant_category": cols[3],
               "merchant_country": cols[4], "channel": cols[6], "fraud": cols[7]}
    return Activity(cols[0].astype(np.int64), cols[1].astype(np.int64), columns)


def card_transactions(cards: Accounts, persons: Persons, cases: list[FraudCase], start_day: int,
                      days: int, rng: np.random.Generator) -> tuple[Table, dict]:
    """~60 days of card transactions plus each landing day's, in time order; returns fraud labels too."""
    legit = _legit_transactions(cards, persons, start_day, days, rng)
    fraud = _fraud_transactions(cases)
    owner = np.concatenate([legit.owner, fraud.owner])
    ts = np.concatenate([legit.ts, fraud.ts])
    cols = {k: np.concatenate([legit.columns[k], fraud.columns[k]]) for k in legit.columns}
    keep = ts < (start_day + days) * DAY
    order = np.flatnonzero(keep)[np.lexsort((owner[keep], ts[keep]))]
    numbers = 10_000_000_000 + np.arange(len(order), dtype=np.int64)
    columns = {
        "txn_id": Ids("T%011d", numbers),
        "card_account_id": Ids("CA%09d", cards.number[owner[order]]),
        "txn_at": ts[order],
        "amount": cols["amount"][order],
        "currency": Codes(TXN_CURRENCIES, cols["currency"][order]),
        "merchant_category": Codes(MCCS, cols["merchant_category"][order]),
        "merchant_country": Codes(COUNTRIES, cols["merchant_country"][order]),
        "channel": Codes(TXN_CHANNELS, cols["channel"][order]),
    }
    pattern = cols["fraud"][order]
    is_fraud = np.flatnonzero(pattern > 0)
    labels = {"txn_id": ["T%011d" % x for x in numbers[is_fraud].tolist()],
              "fraud_pattern": [FRAUD_PATTERNS[x] for x in pattern[is_fraud].tolist()]}
    return Table(columns, landing_index(ts[order], start_day)), labels


def landing_index(ts: np.ndarray, start_day: int) -> np.ndarray:
    """Landing-day index of timestamps: history lands with day 0."""
    return np.maximum(ts // DAY - start_day, 0)


def _hash48(numbers: np.ndarray) -> np.ndarray:
    # An odd multiplier is a bijection modulo 2**48, so distinct numbers keep distinct ids.
    mixed = numbers.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return (mixed & np.uint64(2**48 - 1)).astype(np.int64)


def _sessions(profiles: list, persons: Persons, start_day: int, days: int, rng: np.random.Generator):
    person = np.array([x.person for x in profiles], dtype=np.int64)
    registered = np.array([x.registered // DAY for x in profiles], dtype=np.int64)
    first_seen = {}
    dup = np.array([first_seen.setdefault(x.person, i) != i for i, x in enumerate(profiles)])
    affinity = persons.affinity[person]
    rate = (0.05 + 1.2 * affinity ** 1.5) * rng.lognormal(0, 0.4, len(profiles)) * np.where(dup, 0.1, 1.0)
    never = np.full(len(profiles), np.iinfo(np.int64).max)
    owner, day = _daily_counts(rate, person, registered, never, persons, _window(start_day, days), rng)
    return owner, day * DAY + _time_of_day(len(owner), rng), affinity


def digital_events(profiles: list, persons: Persons, takeovers: list, start_day: int, days: int,
                   rng: np.random.Generator) -> Table:
    """Sessions of login, payments, logout (and rare resets, new devices), plus takeover logins."""
    owner, ts, affinity = _sessions(profiles, persons, start_day, days, rng)
    m = len(owner)
    n_devices = rng.integers(1, 4, len(profiles))
    device = owner * 8 + (rng.random(m) * n_devices[owner]).astype(np.int64)
    new_device = rng.random(m) < 0.008
    fresh = len(profiles) * 8 + np.arange(m)
    device = np.where(new_device, fresh, device)
    abroad = rng.random(m) < 0.03
    country = np.where(abroad, rng.integers(1, 1 + len(names.TRAVEL), m), 0)
    channel = np.where(rng.random(m) < 0.3 + 0.6 * affinity[owner], 0, 1)
    parts = [(ts, LOGIN, np.ones(m, bool)), (ts - 45, NEW_DEVICE, new_device),
             (ts - 300, RESET, rng.random(m) < 0.006)]
    pays = rng.binomial(2, 0.3, m)
    for k in (1, 2):
        parts.append((ts + 60 * k + rng.integers(0, 240, m), PAYMENT, pays >= k))
    parts.append((ts + 600 + rng.integers(0, 1200, m), LOGOUT, rng.random(m) < 0.75))
    sel = [np.flatnonzero(mask) for _, _, mask in parts]
    ev_ts = np.concatenate([p[0][s] for p, s in zip(parts, sel)])
    ev_type = np.concatenate([np.full(len(s), p[1]) for p, s in zip(parts, sel)])
    src = np.concatenate(sel)
    ev_owner, ev_device, ev_country, ev_channel = owner[src], device[src], country[src], channel[src]
    extra = _takeover_events(takeovers, len(profiles) * 8 + m)
    ev_owner, ev_ts, ev_type, ev_device, ev_country, ev_channel = (
        np.concatenate([a, b]) for a, b in zip((ev_owner, ev_ts, ev_type, ev_device, ev_country, ev_channel), extra))
    keep = np.flatnonzero(ev_ts < (start_day + days) * DAY)
    order = keep[np.lexsort((ev_type[keep], ev_owner[keep], ev_ts[keep]))]
    columns = {
        "event_id": Ids("EV%011d", 10_000_000_000 + np.arange(len(order), dtype=np.int64)),
        "digital_id": np.array([x.rid for x in profiles], dtype=object)[ev_owner[order]],
        "event_type": Codes(EVENT_TYPES, ev_type[order]),
        "event_at": ev_ts[order],
        "device_id": Ids("dev-%012x", _hash48(ev_device[order])),
        "ip_country": Codes(COUNTRIES, ev_country[order]),
        "channel": Codes(DIGITAL_CHANNELS, ev_channel[order]),
    }
    return Table(columns, landing_index(ev_ts[order], start_day))


def _takeover_events(takeovers: list, first_device: int) -> tuple:
    """new_device then login from an unusual country just before an account-takeover spree."""
    owner, ts, kind, device, country = [], [], [], [], []
    for i, (profile, start_ts, country_code) in enumerate(takeovers):
        for offset, event in ((0, NEW_DEVICE), (30, LOGIN)):
            owner.append(profile)
            ts.append(start_ts + offset)
            kind.append(event)
            device.append(first_device + i)
            country.append(country_code)
    as_int = [np.asarray(v, dtype=np.int64) for v in (owner, ts, kind, device, country)]
    return (*as_int, np.ones(len(owner), dtype=np.int64))


def takeover_logins(cases: list[FraudCase], cards: Accounts, profile_of: dict) -> list:
    """(profile index, time, country code) of the takeover login preceding each takeover case."""
    out = []
    for case in cases:
        person = int(cards.person[case.account])
        if case.pattern == 2 and person in profile_of:
            out.append((profile_of[person], case.start_ts, case.country))
    return out
