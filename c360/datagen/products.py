"""Products the bank's systems hold: core accounts with balances, and card accounts."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np

from c360.datagen.people import CHURN_CLOSED, CHURN_DORMANT, CHURN_NONE, YEAR, Persons, engagement
from c360.datagen.systems import DAY, date_to_day
from c360.datagen.table import MISSING, Codes, Ids, Table, object_array

CORE_PRODUCTS = ("CUR", "SAV", "LOAN", "MORT")
CORE_STATUS = ("ACTIVE", "DORMANT", "CLOSED")
CARD_STATUS = ("Open", "Blocked", "Closed")
ACCOUNT_CURRENCIES = ("GBP", "EUR", "USD")
CUR, SAV, LOAN, MORT = range(4)
# Rows: life stage; columns: CUR, SAV, LOAN, MORT take-up.
_TAKE_UP = np.array([[0.95, 0.30, 0.03, 0.00], [0.94, 0.40, 0.15, 0.10], [0.93, 0.45, 0.20, 0.40],
                     [0.92, 0.55, 0.10, 0.30], [0.90, 0.60, 0.02, 0.05]])
_CUR_LEVEL = np.array([600.0, 1800.0, 5000.0, 14000.0])
_SAV_LEVEL = np.array([1500.0, 8000.0, 30000.0, 90000.0])
_CARD_LIMIT = np.array([[500, 2000], [1500, 5000], [3000, 10000], [6000, 20000]])


@dataclass
class Accounts:
    """Accounts as parallel arrays; lifecycle days are absolute days, MISSING when not (yet) happened."""

    number: np.ndarray
    owner: np.ndarray
    person: np.ndarray
    product: np.ndarray
    currency: np.ndarray
    opened: np.ndarray
    closed: np.ndarray
    dormant: np.ndarray
    level: np.ndarray
    term: np.ndarray
    updated_secs: np.ndarray
    pan_hash: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.number)


def _subset(acc: Accounts, keep: np.ndarray) -> Accounts:
    return Accounts(**{k: None if v is None else v[keep] for k, v in acc.__dict__.items()})


def month_ends(start: dt.date, months: int) -> list[int]:
    """Absolute days of the last `months` month ends strictly before `start`, oldest first."""
    out, first = [], start.replace(day=1)
    for _ in range(months):
        out.append(date_to_day(first) - 1)
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return sorted(out)


def _record_arrays(recs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    person = np.array([x.person for x in recs], dtype=np.int64)
    since = np.array([x.since for x in recs], dtype=np.int64)
    owner = object_array([x.rid for x in recs])
    seen, dup = set(), np.zeros(len(recs), dtype=bool)
    for i, x in enumerate(recs):
        dup[i] = x.person in seen
        seen.add(x.person)
    return person, since, owner, dup


def build_core_accounts(recs: list, persons: Persons, start_day: int, days: int,
                        rng: np.random.Generator) -> Accounts:
    """Current, savings, loan and mortgage accounts of core banking customers, with lifecycle days."""
    person, since, owner, dup = _record_arrays(recs)
    stage, income = persons.life_stage[person], persons.income[person]
    take = _TAKE_UP[stage] * np.where(dup, 0.4, 1.0)[:, None]
    holds = rng.random(take.shape) < take
    holds[:, CUR] |= ~holds.any(axis=1)
    rec_idx, product = np.nonzero(holds)
    n = len(rec_idx)
    start = since[rec_idx]
    new = persons.born_day[person[rec_idx]] > 0
    span = np.maximum(start_day - start, 1)
    u = rng.random(n)
    opened = np.select(
        [product == CUR, product == SAV, product == LOAN],
        [start, start + (u * span * 0.7).astype(np.int64),
         np.maximum(start, start_day - (u * 5 * YEAR).astype(np.int64))],
        default=np.maximum(start, start_day - (u * 20 * YEAR).astype(np.int64)))
    opened = np.where(new, start, np.minimum(opened, start_day))
    term = np.where(product == LOAN, (rng.uniform(3, 7, n) * YEAR).astype(np.int64),
                    np.where(product == MORT, int(25 * YEAR), 0))
    currency = np.where((product == SAV) & (rng.random(n) < 0.04), rng.integers(1, 3, n), 0)
    level = _levels(product, income[rec_idx], rng)
    acc = Accounts(number=np.zeros(n, dtype=np.int64), owner=owner[rec_idx], person=person[rec_idx],
                   product=product, currency=currency, opened=opened,
                   closed=np.full(n, MISSING, dtype=np.int64), dormant=np.full(n, MISSING, dtype=np.int64),
                   level=level, term=term, updated_secs=rng.integers(7 * 3600, 21 * 3600, n))
    return _number(_lifecycle(acc, persons, start_day, days, rng), 100_000_000, rng)


def _levels(product: np.ndarray, income: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.lognormal(0.0, 0.6, len(product))
    principal = np.where(product == LOAN, rng.uniform(3000, 25000, len(product)),
                         rng.uniform(80000, 400000, len(product)))
    return np.select([product == CUR, product == SAV],
                     [_CUR_LEVEL[income] * noise, _SAV_LEVEL[income] * noise], default=principal)


def _lifecycle(acc: Accounts, persons: Persons, start_day: int, days: int,
               rng: np.random.Generator) -> Accounts:
    """Closures and dormancy: churners' day-to-day accounts, paid-off loans, a few quiet savers."""
    n, last_day = len(acc), start_day + days - 1
    window_start = start_day - 400
    churn_day, churn_type = persons.churn_day[acc.person], persons.churn_type[acc.person]
    everyday = (acc.product == CUR) | (acc.product == SAV)
    hit = everyday & (churn_day != MISSING) & (acc.opened < churn_day) & (churn_day <= last_day)
    acc.closed = np.where(hit & (churn_type == CHURN_CLOSED), churn_day, acc.closed)
    acc.dormant = np.where(hit & (churn_type == CHURN_DORMANT), churn_day, acc.dormant)
    # Only long-held accounts go quiet or get closed for reasons other than churn.
    seasoned = (churn_type == CHURN_NONE) & (acc.opened < window_start)
    quiet = seasoned & (acc.product == SAV) & (rng.random(n) < 0.03)
    acc.dormant = np.where(quiet, start_day - rng.integers(0, 400, n), acc.dormant)
    loans = acc.term > 0
    ends = acc.opened + acc.term
    acc.closed = np.where(loans & (ends <= last_day), ends, acc.closed)
    leave = seasoned & everyday & (rng.random(n) < 0.01)
    leave_day = rng.integers(window_start, last_day + 1, n)
    acc.closed = np.where(leave & (leave_day > acc.opened), leave_day, acc.closed)
    keep = (acc.closed == MISSING) | (acc.closed >= window_start)
    return _subset(acc, keep)


def _number(acc: Accounts, base: int, rng: np.random.Generator) -> Accounts:
    order = np.lexsort((acc.product, acc.person, acc.opened))
    acc = _subset(acc, order)
    acc.number = base + np.cumsum(rng.integers(1, 9, len(acc)))
    return acc


def _state_at(acc: Accounts, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Status code, closed date and last-change day of every account at the end of `day`."""
    closed = (acc.closed != MISSING) & (acc.closed <= day)
    dormant = (acc.dormant != MISSING) & (acc.dormant <= day)
    status = np.where(closed, 2, np.where(dormant, 1, 0))
    last_change = np.maximum(acc.opened, np.where(dormant, acc.dormant, MISSING))
    last_change = np.maximum(last_change, np.where(closed, acc.closed, MISSING))
    return status, np.where(closed, acc.closed, MISSING), last_change


def account_table(acc: Accounts, start_day: int, days: int, kind: str) -> Table:
    """Account rows: the state of every opened account on day 0, then each day's openings and changes."""
    parts = []
    for d in range(days):
        today = start_day + d
        if d == 0:
            rows = np.flatnonzero(acc.opened <= today)
        else:
            rows = np.flatnonzero((acc.opened == today) | (acc.closed == today) | (acc.dormant == today))
        parts.append((rows, np.full(len(rows), d, dtype=np.int64), today))
    idx = np.concatenate([p[0] for p in parts])
    day = np.concatenate([p[1] for p in parts])
    status = np.zeros(len(idx), dtype=np.int64)
    closed = np.zeros(len(idx), dtype=np.int64)
    changed = np.zeros(len(idx), dtype=np.int64)
    offset = 0
    for rows, _, today in parts:
        s, c, ch = _state_at(_subset(acc, rows), today)
        status[offset:offset + len(rows)], closed[offset:offset + len(rows)] = s, c
        changed[offset:offset + len(rows)] = ch
        offset += len(rows)
    updated = changed * DAY + acc.updated_secs[idx]
    if kind == "core":
        columns = _core_account_columns(acc, idx, status, closed, updated)
    else:
        columns = _card_account_columns(acc, idx, status, updated)
    return Table(columns, day)


def _core_account_columns(acc, idx, status, closed, updated) -> dict:
    return {"account_no": Ids("%010d", acc.number[idx]), "cust_no": acc.owner[idx],
            "product_code": Codes(CORE_PRODUCTS, acc.product[idx]),
            "currency": Codes(ACCOUNT_CURRENCIES, acc.currency[idx]),
            "opened_date": acc.opened[idx], "closed_date": closed,
            "status": Codes(CORE_STATUS, status), "updated_at": updated}


def _card_account_columns(acc, idx, status, updated) -> dict:
    return {"card_account_id": Ids("CA%09d", acc.number[idx]), "card_customer_id": acc.owner[idx],
            "card_number_hash": acc.pan_hash[idx], "credit_limit": acc.level[idx],
            "currency": Codes(ACCOUNT_CURRENCIES, acc.currency[idx]), "opened_date": acc.opened[idx],
            "status": Codes(CARD_STATUS, status), "updated_at": updated}


def _balance_values(acc: Accounts, persons: Persons, day: int, rng: np.random.Generator) -> np.ndarray:
    n = len(acc)
    fade = np.maximum(engagement(persons, acc.person, np.full(n, day)), 0.03)
    payday = (acc.number % 28).astype(np.int64)
    since_pay = (day - payday) % 30
    cycle = 1.3 - since_pay / 30.0
    current = acc.level * cycle * fade + rng.normal(0.0, 0.08, n) * acc.level
    overdrawn = (acc.number % 13 == 0)
    current = np.where(overdrawn, current - acc.level * 0.7, current)
    months = np.maximum(day - acc.opened, 0) / 30.44
    savings = acc.level * (1.0 + 0.003 * np.minimum(months, 120)) * fade
    repaid = np.clip((day - acc.opened) / np.maximum(acc.term, 1), 0.0, 1.0)
    owed = -acc.level * (1.0 - repaid)
    value = np.select([acc.product == CUR, acc.product == SAV], [current, savings], default=owed)
    return np.round(value, 2)


def balance_table(acc: Accounts, persons: Persons, start: dt.date, days: int, history_months: int,
                  rng: np.random.Generator) -> Table:
    """Month-end balances plus the first day's in the initial extract, then one row per open account a day."""
    start_day = date_to_day(start)
    dates = [(t, 0) for t in month_ends(start, history_months)] + [(start_day + d, d) for d in range(days)]
    accounts, when, values, day_index = [], [], [], []
    for t, d in dates:
        open_rows = np.flatnonzero((acc.opened <= t) & ((acc.closed == MISSING) | (t < acc.closed)))
        accounts.append(open_rows)
        when.append(np.full(len(open_rows), t, dtype=np.int64))
        values.append(_balance_values(_subset(acc, open_rows), persons, t, rng))
        day_index.append(np.full(len(open_rows), d, dtype=np.int64))
    idx = np.concatenate(accounts)
    columns = {"account_no": Ids("%010d", acc.number[idx]), "balance_date": np.concatenate(when),
               "ledger_balance": np.concatenate(values),
               "currency": Codes(ACCOUNT_CURRENCIES, acc.currency[idx])}
    return Table(columns, np.concatenate(day_index))


def _pan_hashes(n: int, rng: np.random.Generator) -> np.ndarray:
    """sha256 hex of fake, Luhn-valid 16-digit card numbers."""
    payload = rng.integers(0, 10, size=(n, 15))
    payload[:, 0] = np.where(rng.random(n) < 0.6, 4, 5)
    doubled = payload.copy()
    odd = np.arange(15)[::-1] % 2 == 0
    doubled[:, odd] = payload[:, odd] * 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    check = (10 - doubled.sum(axis=1) % 10) % 10
    digits = np.concatenate([payload, check[:, None]], axis=1).astype(np.uint8) + ord("0")
    pans = [row.tobytes() for row in digits]
    return object_array([hashlib.sha256(pan).hexdigest() for pan in pans])


def build_card_accounts(recs: list, persons: Persons, start_day: int, days: int,
                        rng: np.random.Generator) -> Accounts:
    """Credit card accounts of card customers: limits by income, churners' cards closed."""
    person, since, owner, dup = _record_arrays(recs)
    second = ~dup & (rng.random(len(recs)) < 0.15)
    rec_idx = np.concatenate([np.arange(len(recs)), np.flatnonzero(second)])
    n = len(rec_idx)
    p = person[rec_idx]
    lo, hi = _CARD_LIMIT[persons.income[p]].T
    limit = np.round(rng.uniform(lo, hi) / 100.0) * 100.0
    opened = since[rec_idx].copy()
    later = np.arange(n) >= len(recs)
    gap = np.maximum(start_day - opened, 1)
    opened = np.where(later, opened + (rng.random(n) * gap).astype(np.int64), opened)
    churn_day = persons.churn_day[p]
    gone = (persons.churn_type[p] != CHURN_NONE) & (churn_day <= start_day + days - 1) & (opened < churn_day)
    acc = Accounts(number=np.zeros(n, dtype=np.int64), owner=owner[rec_idx], person=p,
                   product=np.zeros(n, dtype=np.int64), currency=np.zeros(n, dtype=np.int64),
                   opened=opened, closed=np.where(gone, churn_day, MISSING).astype(np.int64),
                   dormant=np.full(n, MISSING, dtype=np.int64), level=limit,
                   term=np.zeros(n, dtype=np.int64), updated_secs=rng.integers(7 * 3600, 21 * 3600, n))
    acc = _number(acc, 200_000_000, rng)
    acc.pan_hash = _pan_hashes(len(acc), rng)
    return acc


def block_cards(acc: Accounts, rows: np.ndarray, days_blocked: np.ndarray) -> None:
    """Block cards `rows` from `days_blocked` on; for cards the dormant slot means Blocked."""
    current = acc.dormant[rows]
    acc.dormant[rows] = np.where(current == MISSING, days_blocked, np.minimum(current, days_blocked))
