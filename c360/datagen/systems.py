"""Customer records each source system holds for a person, with the variation real systems show."""

from __future__ import annotations

import datetime as dt
import random
import string
from dataclasses import dataclass, field

import numpy as np

from c360.datagen import names
from c360.datagen.people import LifeEvent, Persons, apply_life_event
from c360.datagen.table import MISSING, Table, object_array

SYSTEMS = ("core_banking", "cards", "digital", "crm")
CUSTOMER_FEEDS = {"core_banking": "customers", "cards": "customers", "digital": "profiles", "crm": "contacts"}
EPOCH = dt.date(1970, 1, 1)
DAY = 86400
# Share of records where the system holds a nickname, an initial, no email or no birth date.
NICKNAME_RATE = {"core_banking": 0.05, "cards": 0.10, "digital": 0.22, "crm": 0.15}
INITIAL_RATE = {"core_banking": 0.02, "cards": 0.06, "digital": 0.01, "crm": 0.04}
EMAIL_MISSING = {"core_banking": 0.20, "cards": 0.20, "digital": 0.03, "crm": 0.25}
DOB_MISSING = {"core_banking": 0.01, "cards": 0.0, "digital": 0.20, "crm": 0.12}
# Each system has a house style for phone numbers; some records deviate from it.
NATIVE_PHONE_STYLE = {"core_banking": 0, "cards": 1, "digital": 2, "crm": 3}
# Chance a system records a life event on the day it happens; the rest keep the stale value.
PICKUP = {"core_banking": 0.9, "cards": 0.6, "digital": 0.75, "crm": 0.5}
DUPLICATE_RATE = 0.02
CORE_REF_RATE = 0.4
_ID_PREFIX = {"core_banking": "C%08d", "cards": "CC%08d"}
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


class SourceRecord:
    """One customer record in one source system; fields hold the system's (possibly stale) view."""

    __slots__ = ("system", "rid", "person", "born", "first", "middle", "last", "dob", "email",
                 "email_upper", "phone", "phone_style", "address", "pc_style", "since", "updated",
                 "title", "national_id", "username", "registered", "core_ref")


@dataclass
class SourceRecords:
    """All source customer records, per system and per person."""

    by_system: dict = field(default_factory=lambda: {s: [] for s in SYSTEMS})
    by_person: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)
    taken: set = field(default_factory=set)

    def add(self, rec: SourceRecord) -> None:
        """Register a new record."""
        self.by_system[rec.system].append(rec)
        self.by_person.setdefault(rec.person, []).append(rec)

    def of(self, person: int, system: str) -> list:
        """Records `person` has in `system`, oldest first."""
        return [r for r in self.by_person.get(person, ()) if r.system == system]


def day_to_date(day: int) -> dt.date:
    """Absolute day number (days since 1970-01-01) to a date."""
    return EPOCH + dt.timedelta(days=int(day))


def date_to_day(date: dt.date) -> int:
    """A date to its absolute day number."""
    return (date - EPOCH).days


def typo(text: str, r: random.Random) -> str:
    """One keying error: a substituted, swapped or dropped character (never the first letter)."""
    if len(text) < 3:
        return text
    pos = r.randrange(1, len(text) - 1)
    kind = r.randrange(3)
    if kind == 1 and text[pos] != text[pos + 1]:
        return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2:]
    if kind == 2 and len(text) > 3:
        return text[:pos] + text[pos + 1:]
    letter = r.choice([c for c in "aeioulnrst" if c != text[pos].lower()])
    return text[:pos] + letter + text[pos + 1:]


def phone_text(digits: str | None, style: int) -> str | None:
    """A UK mobile number in one of five house styles ("07700 900123", "+44 7700 900123", ...)."""
    if digits is None:
        return None
    if style == 0:
        return f"0{digits[:4]} {digits[4:]}"
    if style == 1:
        return f"+44 {digits[:4]} {digits[4:]}"
    if style == 2:
        return f"44{digits}"
    if style == 3:
        return f"(0{digits[:4]}) {digits[4:7]}-{digits[7:]}"
    return f"0{digits}"


def email_text(email: str | None, upper: bool) -> str | None:
    """The email as the system stores it, sometimes with capitalised words ("John.Smith@Gmail.com")."""
    if email is None or not upper:
        return email
    local, domain = email.split("@")
    cap = ".".join(part[:1].upper() + part[1:] for part in local.split("."))
    return f"{cap}@{domain[:1].upper()}{domain[1:]}"


def postcode_text(postcode: str, style: int) -> str:
    """Postcode as keyed: normal, without the space, or lower case."""
    if style == 1:
        return postcode.replace(" ", "")
    if style == 2:
        return postcode.lower()
    return postcode


def _vary_name(persons: Persons, p: int, system: str, r: random.Random) -> tuple:
    first, middle = persons.first[p], persons.middle[p]
    married = persons.birth_last[p] != persons.last[p]
    last = persons.birth_last[p] if married and r.random() < 0.45 else persons.last[p]
    if first in names.NICKNAMES and r.random() < NICKNAME_RATE[system]:
        first = r.choice(names.NICKNAMES[first])
    elif r.random() < INITIAL_RATE[system]:
        first = first[0] + ("." if r.random() < 0.5 else "")
    elif middle and system in ("digital", "crm") and r.random() < 0.05:
        first = f"{first} {middle[0]}"
    if r.random() < 0.05:
        first = typo(first, r)
    if r.random() < 0.05:
        last = typo(last, r)
    if r.random() < 0.01:
        first, last = last, first
    shown = {"core_banking": 0.85, "cards": 0.7}.get(system, 0.0)
    return first, (middle if middle and r.random() < shown else None), last


def _vary_dob(dob_day: int, system: str, r: random.Random) -> int:
    if r.random() < DOB_MISSING[system]:
        return MISSING
    born = day_to_date(dob_day)
    if born.day <= 12 and born.day != born.month and r.random() < 0.01:
        return date_to_day(dt.date(born.year, born.day, born.month))
    return dob_day


def _title(persons: Persons, p: int, r: random.Random) -> str:
    if r.random() < 0.03:
        return "Dr"
    if persons.gender[p] == "M":
        return "Mr"
    married = persons.birth_last[p] != persons.last[p] or r.random() < 0.4
    return "Mrs" if married else r.choice(("Ms", "Miss"))


def new_record(persons: Persons, p: int, system: str, since: int, updated: int,
               r: random.Random) -> SourceRecord:
    """A record of person `p` in `system` as that system captured it, with realistic noise."""
    rec = SourceRecord()
    rec.system, rec.person, rec.rid, rec.born = system, p, None, int(persons.born_day[p])
    rec.first, rec.middle, rec.last = _vary_name(persons, p, system, r)
    rec.dob = _vary_dob(int(persons.dob[p]), system, r)
    rec.email = None if r.random() < EMAIL_MISSING[system] else persons.email[p]
    rec.email_upper = r.random() < 0.1
    old_phone = persons.old_phone[p]
    rec.phone = old_phone if old_phone and r.random() < 0.5 else persons.phone[p]
    rec.phone = None if r.random() < 0.04 else rec.phone
    rec.phone_style = NATIVE_PHONE_STYLE[system] if r.random() < 0.7 else r.randrange(5)
    old_address = persons.old_address[p]
    rec.address = old_address if old_address and r.random() < 0.4 else persons.address[p]
    rec.pc_style = 0 if r.random() < 0.85 else (1 if r.random() < 0.67 else 2)
    rec.since, rec.updated = since, updated
    rec.title = _title(persons, p, r)
    rec.national_id = persons.national_id[p] if system == "core_banking" and r.random() < 0.9 else None
    rec.username, rec.registered, rec.core_ref = None, MISSING, None
    if system == "digital":
        base = "".join(ch for ch in (persons.first[p][0] + persons.last[p]).lower() if ch.isalpha())
        rec.username = f"{base}{r.randint(1, 9999)}"
        rec.registered = min(updated, since * DAY + r.randint(7 * 3600, 22 * 3600))
    return rec


def _system_since(persons: Persons, p: int, system: str, start_day: int, r: random.Random) -> int:
    since = int(persons.since[p])
    if system == "core_banking" or since >= start_day:
        return since
    latest = start_day - 1
    if system == "digital":
        since = max(since, date_to_day(dt.date(2012, 1, 1)))
    return min(latest, since + int(r.random() * (latest - since) * 0.6))


def _updated_ts(since: int, start_day: int, r: random.Random) -> int:
    first = since * DAY + 8 * 3600
    last = start_day * DAY + 86399
    return first + int(r.random() * max(last - first, 1))


def build_initial_records(persons: Persons, start_day: int, r: random.Random) -> SourceRecords:
    """Records of every person present at the first landing date, ~2% duplicated within a system."""
    records = SourceRecords()
    initial = np.flatnonzero(persons.born_day == 0).tolist()
    for p in initial:
        held = [s for s in SYSTEMS if persons.systems[s][p]]
        for system in held:
            since = _system_since(persons, p, system, start_day, r)
            records.add(new_record(persons, p, system, since, _updated_ts(since, start_day, r), r))
        if r.random() < DUPLICATE_RATE:
            system = r.choice(held)
            since = min(start_day - 1, int(persons.since[p]) + r.randint(30, 2500))
            records.add(new_record(persons, p, system, since, _updated_ts(since, start_day, r), r))
    _assign_ids(records, [rec for s in SYSTEMS for rec in records.by_system[s]], r)
    _link_core_refs(records, [rec for rec in records.by_system["crm"]], r)
    return records


def add_new_person_records(records: SourceRecords, persons: Persons, day_index: int, start_day: int,
                           r: random.Random) -> list:
    """Records of persons who become customers on landing day `day_index`."""
    today = start_day + day_index
    created = []
    for p in np.flatnonzero(persons.born_day == day_index).tolist():
        for system in SYSTEMS:
            if persons.systems[system][p]:
                rec = new_record(persons, p, system, today, today * DAY + r.randint(8 * 3600, 20 * 3600), r)
                records.add(rec)
                created.append(rec)
    _assign_ids(records, created, r)
    _link_core_refs(records, [rec for rec in created if rec.system == "crm"], r)
    return created


def _assign_ids(records: SourceRecords, new: list, r: random.Random) -> None:
    """Give new records ids in onboarding order; sequential systems leave gaps like real ones."""
    for system in SYSTEMS:
        batch = sorted((rec for rec in new if rec.system == system), key=lambda x: (x.since, x.person))
        counter = records.counters.get(system, 10_000_000 + r.randint(0, 99_999))
        for rec in batch:
            if system in _ID_PREFIX:
                counter += r.randint(1, 17)
                rec.rid = _ID_PREFIX[system] % counter
                continue
            rid = None
            while rid is None or rid in records.taken:
                rid = _digital_id(r) if system == "digital" else _crm_id(r)
            rec.rid = rid
            records.taken.add(rid)
        records.counters[system] = counter


def _digital_id(r: random.Random) -> str:
    h = f"{r.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:32]}"


def _crm_id(r: random.Random) -> str:
    return "003" + "".join(r.choices(_BASE62, k=12))


def _link_core_refs(records: SourceRecords, crm: list, r: random.Random) -> None:
    for rec in crm:
        core = records.of(rec.person, "core_banking")
        if core and r.random() < CORE_REF_RATE:
            rec.core_ref = core[0].rid


def apply_day_events(records: SourceRecords, persons: Persons, events: list[LifeEvent], day_index: int,
                     start_day: int, r: random.Random) -> list:
    """Apply a day's life events to persons and to the records whose system picks them up."""
    today = start_day + day_index
    changed: dict = {}
    for event in events:
        apply_life_event(persons, event)
        held = [rec for rec in records.by_person.get(event.person, ()) if rec.born < day_index]
        if event.kind == "touch" and held:
            picked = [r.choice(held)]
        else:
            picked = [rec for rec in held if r.random() < PICKUP[rec.system]]
        for rec in picked:
            _update_record(rec, event, r)
            rec.updated = today * DAY + r.randint(7 * 3600, 22 * 3600)
            changed[id(rec)] = rec
    return list(changed.values())


def _update_record(rec: SourceRecord, event: LifeEvent, r: random.Random) -> None:
    if event.kind == "move":
        rec.address = event.value
    elif event.kind == "phone":
        rec.phone = event.value
    elif event.kind == "email" and (rec.email is not None or r.random() < 0.5):
        rec.email = event.value
    elif event.kind == "marriage":
        rec.last = event.value


def _dates(values: list) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def render_records(system: str, recs: list, day_index: int) -> Table:
    """The customers feed rows of `system` for records `recs`, sorted by record id."""
    recs = sorted(recs, key=lambda x: x.rid)
    render = {"core_banking": _core_columns, "cards": _cards_columns,
              "digital": _digital_columns, "crm": _crm_columns}[system]
    return Table(render(recs), np.full(len(recs), day_index, dtype=np.int64))


def _core_columns(recs: list) -> dict:
    return {
        "cust_no": object_array([x.rid for x in recs]),
        "national_id": object_array([x.national_id for x in recs]),
        "title": object_array([x.title for x in recs]),
        "first_name": object_array([x.first for x in recs]),
        "middle_name": object_array([x.middle for x in recs]),
        "last_name": object_array([x.last for x in recs]),
        "date_of_birth": _dates([x.dob for x in recs]),
        "email": object_array([email_text(x.email, x.email_upper) for x in recs]),
        "phone": object_array([phone_text(x.phone, x.phone_style) for x in recs]),
        "address_line1": object_array([x.address.line1 for x in recs]),
        "city": object_array([x.address.city for x in recs]),
        "postcode": object_array([postcode_text(x.address.postcode, x.pc_style) for x in recs]),
        "country": object_array(["GB"] * len(recs)),
        "customer_since": _dates([x.since for x in recs]),
        "updated_at": _dates([x.updated for x in recs]),
    }


def _cards_name(rec: SourceRecord) -> str:
    middle = f" {rec.middle[0]}" if rec.middle else ""
    return f"{rec.last.upper()}, {rec.first}{middle}"


def _cards_columns(recs: list) -> dict:
    return {
        "card_customer_id": object_array([x.rid for x in recs]),
        "full_name": object_array([_cards_name(x) for x in recs]),
        "date_of_birth": _dates([x.dob for x in recs]),
        "email": object_array([email_text(x.email, x.email_upper) for x in recs]),
        "mobile": object_array([phone_text(x.phone, x.phone_style) for x in recs]),
        "address": object_array([f"{x.address.line1}, {x.address.city}" for x in recs]),
        "postcode": object_array([postcode_text(x.address.postcode, x.pc_style) for x in recs]),
        "updated_at": _dates([x.updated for x in recs]),
    }


def _digital_columns(recs: list) -> dict:
    return {
        "digital_id": object_array([x.rid for x in recs]),
        "username": object_array([x.username for x in recs]),
        "email": object_array([email_text(x.email, x.email_upper) for x in recs]),
        "phone": object_array([phone_text(x.phone, x.phone_style) for x in recs]),
        "first_name": object_array([x.first for x in recs]),
        "last_name": object_array([x.last for x in recs]),
        "date_of_birth": _dates([x.dob for x in recs]),
        "registered_at": _dates([x.registered for x in recs]),
        "updated_at": _dates([x.updated for x in recs]),
    }


def _crm_columns(recs: list) -> dict:
    return {
        "contact_id": object_array([x.rid for x in recs]),
        "salutation": object_array([x.title for x in recs]),
        "first_name": object_array([x.first for x in recs]),
        "last_name": object_array([x.last for x in recs]),
        "email": object_array([email_text(x.email, x.email_upper) for x in recs]),
        "phone": object_array([phone_text(x.phone, x.phone_style) for x in recs]),
        "postcode": object_array([postcode_text(x.address.postcode, x.pc_style) for x in recs]),
        "birth_date": _dates([x.dob for x in recs]),
        "core_cust_no": object_array([x.core_ref for x in recs]),
        "modified_at": _dates([x.updated for x in recs]),
    }
