"""Hidden persons behind the source records: identity, households, look-alikes, traits and life events."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from c360.datagen import names
from c360.datagen.table import MISSING

YEAR = 365.25
CHURN_NONE, CHURN_CLOSED, CHURN_DORMANT, CHURN_PENDING = 0, 1, 2, 3
CHURN_TYPES = ("", "closed", "dormant", "pending")
SYSTEM_SHARE = {"core_banking": 0.95, "cards": 0.55, "crm": 0.70}
# Daily chance that an existing person moves, changes phone or email, marries or just has
# their record touched; high enough that a three-day extract shows every kind of change.
LIFE_EVENT_RATES = (("move", 0.0012), ("phone", 0.0012), ("email", 0.0006),
                    ("marriage", 0.0004), ("touch", 0.0015))


class Address(NamedTuple):
    """A postal address as the person gives it."""

    house: int
    street: str
    city: str
    postcode: str

    @property
    def line1(self) -> str:
        """House number and street: "12 High Street"."""
        return f"{self.house} {self.street}"


@dataclass
class Persons:
    """All simulated persons as parallel columns; index i is one person."""

    ids: list
    gender: list
    first: list
    middle: list
    last: list
    birth_last: list
    dob: np.ndarray
    email: list
    phone: list
    old_phone: list
    address: list
    old_address: list
    national_id: list
    household: list
    life_stage: np.ndarray
    income: np.ndarray
    affinity: np.ndarray
    since: np.ndarray
    born_day: np.ndarray
    systems: dict
    look_alike_of: list
    namesake_of: list
    churn_day: np.ndarray
    churn_type: np.ndarray
    has_insurance: np.ndarray

    @property
    def n(self) -> int:
        """Number of persons."""
        return len(self.ids)


@dataclass(frozen=True)
class LifeEvent:
    """A change in a person's identity on one landing day."""

    person: int
    kind: str
    value: object


def _weighted(pairs) -> tuple[list, np.ndarray]:
    labels = [p[0] for p in pairs]
    weights = np.array([p[1] for p in pairs], dtype=float)
    return labels, weights / weights.sum()


def _choice(rng: np.random.Generator, pairs, size: int) -> list:
    labels, probs = _weighted(pairs)
    return [labels[i] for i in rng.choice(len(labels), size=size, p=probs).tolist()]


def _last_name_probs() -> np.ndarray:
    # Zipf-like: a handful of surnames cover a large share, as in the UK.
    ranks = np.arange(len(names.LAST_NAMES), dtype=float)
    weights = 1.0 / (ranks + 8.0) ** 1.1
    return weights / weights.sum()


_CITY_CUM = tuple(itertools.accumulate(c[2] for c in names.CITIES))
_STREET_TYPES = tuple(t[0] for t in names.STREET_TYPES)
_STREET_TYPE_CUM = tuple(itertools.accumulate(t[1] for t in names.STREET_TYPES))
_DOMAINS = tuple(d[0] for d in names.EMAIL_DOMAINS)
_DOMAIN_CUM = tuple(itertools.accumulate(d[1] for d in names.EMAIL_DOMAINS))


def random_address(rng: random.Random, city_index: int | None = None) -> Address:
    """A plausible UK address, in a weighted-random city unless `city_index` is given."""
    if city_index is None:
        city_index = rng.choices(range(len(names.CITIES)), cum_weights=_CITY_CUM)[0]
    city, areas, _ = names.CITIES[city_index]
    street_type = rng.choices(_STREET_TYPES, cum_weights=_STREET_TYPE_CUM)[0]
    street = f"{rng.choice(names.STREETS)} {street_type}"
    letters = names.POSTCODE_LETTERS
    postcode = (f"{rng.choice(areas)}{rng.randint(1, 28)} {rng.randint(0, 9)}"
                f"{rng.choice(letters)}{rng.choice(letters)}")
    house = int(min(rng.expovariate(1 / 40.0), 240)) + 1
    return Address(house, street, city, postcode)


def _draw_identity(n: int, start_day: int, rng: np.random.Generator, pyr: random.Random) -> dict:
    gender = np.where(rng.random(n) < 0.51, "F", "M").tolist()
    n_f = sum(g == "F" for g in gender)
    female = iter(_choice(rng, names.FEMALE_FIRST, n_f))
    male = iter(_choice(rng, names.MALE_FIRST, n - n_f))
    first = [next(female) if g == "F" else next(male) for g in gender]
    has_middle = rng.random(n) < 0.6
    mid_f, mid_m = _choice(rng, names.FEMALE_FIRST, n), _choice(rng, names.MALE_FIRST, n)
    middle = [None if not has_middle[i] else (mid_f[i] if gender[i] == "F" else mid_m[i])
              for i in range(n)]
    last_idx = rng.choice(len(names.LAST_NAMES), size=n, p=_last_name_probs())
    last = [names.LAST_NAMES[i] for i in last_idx.tolist()]
    ages = np.clip(rng.normal(46.0, 17.0, n), 18.2, 90.0)
    dob = (start_day - ages * YEAR).astype(np.int64)
    address = [random_address(pyr) for _ in range(n)]
    return {"gender": gender, "first": first, "middle": middle, "last": last,
            "birth_last": list(last), "dob": dob, "address": address}


def _link_households(ident: dict, pool: np.ndarray, rng: np.random.Generator) -> tuple[list, int]:
    """Pair ~15% of persons at shared addresses; returns household ids and how many of `pool` were used."""
    n = len(ident["first"])
    household = [f"H{i + 1:07d}" for i in range(n)]
    pairs = int(round(0.075 * len(pool)))
    heads, members = pool[:pairs], pool[pairs:2 * pairs]
    extra = pool[2 * pairs:2 * pairs + pairs // 10]
    joins = list(zip(heads.tolist(), members.tolist()))
    joins += list(zip(rng.choice(heads, size=len(extra)).tolist() if pairs else [], extra.tolist()))
    same_name = rng.random(len(joins)) < 0.7
    for (head, member), share_name in zip(joins, same_name.tolist()):
        ident["address"][member] = ident["address"][head]
        household[member] = household[head]
        if share_name:
            ident["last"][member] = ident["birth_last"][member] = ident["last"][head]
    return household, 2 * pairs + len(extra)


def _add_look_alikes(ident: dict, household: list, pool: np.ndarray, rng: np.random.Generator,
                     start_day: int) -> list:
    """Same first+last name at the same address, different birth date (Sr/Jr, cousins)."""
    look_alike = [None] * len(household)
    half = len(pool) // 2
    for head, member in zip(pool[:half].tolist(), pool[half:2 * half].tolist()):
        for field in ("gender", "first", "last", "birth_last", "address"):
            ident[field][member] = ident[field][head]
        household[member] = household[head]
        gap_years = rng.uniform(20, 34) if rng.random() < 0.7 else rng.uniform(1, 6)
        sign = 1 if rng.random() < 0.5 else -1
        dob = ident["dob"][head] + sign * int(gap_years * YEAR)
        oldest, youngest = start_day - int(89.5 * YEAR), start_day - int(18.5 * YEAR)
        if not oldest <= dob <= youngest:
            dob = ident["dob"][head] - sign * int(gap_years * YEAR)
        ident["dob"][member] = int(np.clip(dob, oldest, youngest))
        if ident["dob"][member] == ident["dob"][head]:
            ident["dob"][member] -= 400
        look_alike[head], look_alike[member] = member, head
    return look_alike


def _add_namesakes(ident: dict, pool: np.ndarray, rng: np.random.Generator) -> list:
    """Different people with the same common name in different cities, some born the same year."""
    namesake = [None] * len(ident["first"])
    half = len(pool) // 2
    for head, member in zip(pool[:half].tolist(), pool[half:2 * half].tolist()):
        if ident["address"][head].city == ident["address"][member].city:
            continue
        for field in ("gender", "first", "last", "birth_last"):
            ident[field][member] = ident[field][head]
        if rng.random() < 0.5:
            ident["dob"][member] = ident["dob"][head] + int(rng.integers(-200, 200))
        namesake[head], namesake[member] = member, head
    return namesake


def _life_traits(ages: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(ages)
    u = rng.random(n)
    stage = np.select(
        [ages < 25, ages < 35, ages < 50, ages < 65],
        [np.where(u < 0.7, 0, 1), np.where(u < 0.7, 1, 2),
         np.where(u < 0.65, 2, np.where(u < 0.85, 3, 1)), np.where(u < 0.7, 3, 2)],
        default=np.where(u < 0.85, 4, 3))
    income_probs = np.array([[0.8, 0.2, 0.0, 0.0], [0.25, 0.5, 0.2, 0.05], [0.2, 0.45, 0.27, 0.08],
                             [0.15, 0.4, 0.3, 0.15], [0.35, 0.45, 0.15, 0.05]])
    cum = income_probs.cumsum(axis=1)[stage]
    income = (rng.random(n)[:, None] > cum).sum(axis=1).clip(0, 3)
    affinity = np.clip(rng.beta(2.5, 2.0, n) - (ages - 40.0) / 120.0, 0.02, 0.98)
    return stage.astype(np.int64), income.astype(np.int64), affinity


def _email(first: str, last: str, year: int, pyr: random.Random) -> str:
    f = "".join(ch for ch in first.lower() if ch.isalpha())
    s = "".join(ch for ch in last.lower() if ch.isalpha())
    pattern = pyr.randrange(5)
    local = (f"{f}.{s}", f"{f}{s}{pyr.randint(1, 99)}", f"{f[0]}{s}{year % 100:02d}",
             f"{s}.{f}{pyr.randint(1, 999)}", f"{f}_{s}{year}")[pattern]
    return f"{local}@{pyr.choices(_DOMAINS, cum_weights=_DOMAIN_CUM)[0]}"


def unique_email(first: str, last: str, year: int, pyr: random.Random, used: set) -> str:
    """An email address nobody else in `used` has; adds it to `used`."""
    email = _email(first, last, year, pyr)
    while email in used:
        local, domain = email.split("@")
        email = f"{local}{pyr.randint(1, 9)}@{domain}"
    used.add(email)
    return email


def unique_numbers(rng: np.random.Generator, n: int, high: int, used: set | None = None) -> list:
    """`n` distinct integers in [0, high), none of them in `used` (which is updated)."""
    used = set() if used is None else used
    out = []
    while len(out) < n:
        for value in rng.integers(0, high, size=n - len(out) + 8).tolist():
            if value not in used and len(out) < n:
                used.add(value)
                out.append(value)
    return out


def national_id(number: int) -> str:
    """A National-Insurance-like id ("AB123456C") from a number below 361e6*4."""
    letters = names.NI_LETTERS
    prefix, rest = divmod(number, 4_000_000)
    digits, suffix = divmod(rest, 4)
    a, b = divmod(prefix % (len(letters) ** 2), len(letters))
    return f"{letters[a]}{letters[b]}{digits:06d}{'ABCD'[suffix]}"


def _contacts(ident: dict, rng: np.random.Generator, pyr: random.Random) -> dict:
    n = len(ident["first"])
    years = (1970 + ident["dob"] / YEAR).astype(int).tolist()
    used: set = set()
    email = [unique_email(ident["first"][i], ident["birth_last"][i], years[i], pyr, used)
             for i in range(n)]
    phones = unique_numbers(rng, n, 10**9)
    ni = unique_numbers(rng, n, len(names.NI_LETTERS) ** 2 * 4_000_000)
    return {"email": email, "phone": [f"7{p:09d}" for p in phones],
            "national_id": [national_id(x) for x in ni], "emails_used": used,
            "phones_used": set(phones)}


def _history(ident: dict, initial: np.ndarray, ages: np.ndarray, rng: np.random.Generator,
             pyr: random.Random, contacts: dict) -> tuple[list, list]:
    """Old addresses, old phones and maiden names some source systems still hold."""
    n = len(ident["first"])
    moved = initial & (rng.random(n) < 0.12)
    old_address = [random_address(pyr) if m else None for m in moved.tolist()]
    changed = initial & (rng.random(n) < 0.08)
    extra = iter(unique_numbers(rng, int(changed.sum()), 10**9, contacts["phones_used"]))
    old_phone = [f"7{next(extra):09d}" if c else None for c in changed.tolist()]
    married = initial & (rng.random(n) < 0.03) & (ages >= 24)
    for i in np.flatnonzero(married).tolist():
        if ident["gender"][i] == "F":
            maiden = pyr.choice(names.LAST_NAMES)
            if maiden != ident["last"][i]:
                ident["birth_last"][i] = maiden
    return old_address, old_phone


def _membership(n: int, affinity: np.ndarray, rng: np.random.Generator) -> dict:
    systems = {name: rng.random(n) < share for name, share in SYSTEM_SHARE.items()}
    systems["digital"] = rng.random(n) < np.clip(0.3 + 0.7 * affinity, 0.0, 0.97)
    nowhere = ~(systems["core_banking"] | systems["cards"] | systems["digital"] | systems["crm"])
    systems["core_banking"] |= nowhere
    return systems


def _churn(initial: np.ndarray, since: np.ndarray, affinity: np.ndarray, start_day: int, days: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = len(since)
    eligible = initial & (since < start_day - 120)
    churner = eligible & (rng.random(n) < 0.08 * (0.6 + 0.8 * (1.0 - affinity)))
    churn_day = np.full(n, MISSING, dtype=np.int64)
    offsets = rng.integers(-150, days + 90, size=n)
    churn_day[churner] = start_day + offsets[churner]
    last_day = start_day + days - 1
    kind = np.where(rng.random(n) < 0.6, CHURN_CLOSED, CHURN_DORMANT)
    churn_type = np.where(churner, np.where(churn_day <= last_day, kind, CHURN_PENDING), CHURN_NONE)
    return churn_day, churn_type.astype(np.int64)


def make_persons(customers: int, start_day: int, days: int, rng: np.random.Generator,
                 pyr: random.Random) -> Persons:
    """Persons of the bank: `customers` at the first landing date plus ~0.2%/day newcomers after it."""
    new_counts = rng.poisson(0.002 * customers, size=max(days - 1, 0))
    born_day = np.concatenate([np.zeros(customers, dtype=np.int64)]
                              + [np.full(c, d + 1, dtype=np.int64) for d, c in enumerate(new_counts)])
    n = len(born_day)
    initial = born_day == 0
    ident = _draw_identity(n, start_day, rng, pyr)
    pool = rng.permutation(customers)
    household, used = _link_households(ident, pool, rng)
    pairs = max(1, int(round(0.005 * customers))) if customers >= 100 else 0
    look_alike = _add_look_alikes(ident, household, pool[used:used + 2 * pairs], rng, start_day)
    used += 2 * pairs
    namesakes = _add_namesakes(ident, pool[used:used + 2 * max(1, pairs // 2)], rng)
    ages = (start_day - ident["dob"]) / YEAR
    stage, income, affinity = _life_traits(ages, rng)
    contacts = _contacts(ident, rng, pyr)
    old_address, old_phone = _history(ident, initial, ages, rng, pyr, contacts)
    back = np.minimum(rng.exponential(7 * YEAR, n), np.minimum((ages - 18) * YEAR, 30 * YEAR))
    since = np.where(initial, start_day - np.maximum(back, 30).astype(np.int64), start_day + born_day)
    churn_day, churn_type = _churn(initial, since, affinity, start_day, days, rng)
    ids = [f"P{i + 1:07d}" for i in range(n)]

    def person_ref(links: list) -> list:
        """Person ids for person indexes (None stays None)."""
        return [None if j is None else ids[j] for j in links]

    return Persons(
        ids=ids, gender=ident["gender"], first=ident["first"], middle=ident["middle"],
        last=ident["last"], birth_last=ident["birth_last"], dob=ident["dob"],
        email=contacts["email"], phone=contacts["phone"], old_phone=old_phone,
        address=ident["address"], old_address=old_address, national_id=contacts["national_id"],
        household=household, life_stage=stage, income=income, affinity=affinity,
        since=since.astype(np.int64), born_day=born_day, systems=_membership(n, affinity, rng),
        look_alike_of=person_ref(look_alike), namesake_of=person_ref(namesakes),
        churn_day=churn_day, churn_type=churn_type, has_insurance=rng.random(n) < 0.2)


def engagement(persons: Persons, person: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Activity multiplier in [0, 1] of `person` on absolute `day`: fades over ~150 days before churn."""
    churn_day = persons.churn_day[person]
    churner = churn_day != MISSING
    lead = (churn_day - day) / 150.0
    factor = np.where(churner, np.clip(lead, 0.05, 1.0), 1.0)
    after = churner & (day >= churn_day)
    dormant = persons.churn_type[person] == CHURN_DORMANT
    return np.where(after, np.where(dormant, 0.03, 0.0), factor)


def draw_life_events(persons: Persons, day_index: int, start_day: int, rng: np.random.Generator,
                     pyr: random.Random) -> list[LifeEvent]:
    """Identity changes that happen on landing day `day_index` (moves, new phones, marriages...)."""
    today = start_day + day_index
    active = (persons.born_day < day_index) & ~(
        (persons.churn_type == CHURN_CLOSED) & (persons.churn_day <= today))
    events = []
    for kind, rate in LIFE_EVENT_RATES:
        for p in np.flatnonzero(active & (rng.random(persons.n) < rate)).tolist():
            value = _life_event_value(persons, p, kind, pyr)
            if value is not False:
                events.append(LifeEvent(p, kind, value))
    return events


def _life_event_value(persons: Persons, p: int, kind: str, pyr: random.Random):
    if kind == "move":
        same_city = pyr.random() < 0.6
        city = [c[0] for c in names.CITIES].index(persons.address[p].city) if same_city else None
        return random_address(pyr, city)
    if kind == "phone":
        return f"7{pyr.randrange(10**9):09d}"
    if kind == "email":
        year = 1970 + int(persons.dob[p] / YEAR)
        return _email(persons.first[p], persons.last[p], year, pyr)
    if kind == "marriage":
        if persons.gender[p] != "F" or persons.birth_last[p] != persons.last[p]:
            return False
        return pyr.choice([s for s in names.LAST_NAMES[:120] if s != persons.last[p]])
    return None


def apply_life_event(persons: Persons, event: LifeEvent) -> None:
    """Make `event` the person's current truth, keeping the previous value as 'old'."""
    p = event.person
    if event.kind == "move":
        persons.old_address[p] = persons.address[p]
        persons.address[p] = event.value
    elif event.kind == "phone":
        persons.old_phone[p] = persons.phone[p]
        persons.phone[p] = event.value
    elif event.kind == "email":
        persons.email[p] = event.value
    elif event.kind == "marriage":
        persons.last[p] = event.value
