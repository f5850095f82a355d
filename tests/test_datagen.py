"""The synthetic bank honours the landing contract and its ground truth tells the truth."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from c360.datagen import DatagenParams, SourceVariant, generate_bank
from c360.datagen.contract import load_contract, spark_to_strftime

SOURCES = Path(__file__).resolve().parent.parent / "conf" / "sources.yaml"
PARAMS = DatagenParams(customers=300, seed=42, days=2)
REASONS = {"truncated_record", "malformed_date", "malformed_number", "negative_amount",
           "unknown_currency", "missing_required", "duplicate_key"}
CUSTOMER_FEEDS = {"core_banking": "customers", "cards": "customers", "digital": "profiles", "crm": "contacts"}


def _generate(root: Path, params: DatagenParams) -> dict:
    return generate_bank(params, root / "landing", root / "truth", SOURCES)


@pytest.fixture(scope="module")
def contract():
    """Parsed sources.yaml."""
    return load_contract(SOURCES)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """One small generated bank shared by the tests: (root, manifest)."""
    root = tmp_path_factory.mktemp("bank")
    return root, _generate(root, PARAMS)


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _records(path: Path, spec) -> tuple[str, list[str]]:
    """Header line and one raw text per data record, after checking BOM and line structure."""
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") == spec.bom, path
    text = raw.decode("utf-8").lstrip("\ufeff")
    if not text and spec.file_format == "jsonl":
        return "", []
    assert "\r" not in text and text.endswith("\n"), path
    lines = text[:-1].split("\n")
    assert all(lines), f"blank line in {path}"
    if spec.file_format == "csv":
        return lines[0], lines[1:]
    return "", lines


def _parse(line: str, spec):
    """Values of one record in column order, or None if it does not parse as a whole record."""
    if spec.file_format == "csv":
        fields = next(csv.reader(io.StringIO(line), delimiter=spec.delimiter))
        if len(fields) != len(spec.columns):
            return None
        return [v if v != "" else None for v in fields]
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    assert list(obj) == list(spec.headers)
    return [obj[h] for h in spec.headers]


def _date_ok(value, fmt: str) -> bool:
    try:
        return dt.datetime.strptime(value, fmt).strftime(fmt) == value
    except (TypeError, ValueError):
        return False


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    return None


def _violations(values: list, spec) -> list[tuple[str, str]]:
    """Every contract rule a parsed record breaks, as (reason, column)."""
    out = []
    for col, value in zip(spec.columns, values):
        if value is None:
            if col.required:
                out.append(("missing_required", col.name))
            continue
        if col.type in ("date", "timestamp") and not _date_ok(value, col.fmt):
            out.append(("malformed_date", col.name))
        if col.type in ("decimal", "int"):
            number = _number(value)
            if number is None:
                out.append(("malformed_number", col.name))
            elif col.min is not None and number < col.min:
                out.append(("negative_amount", col.name))
        if col.allowed is not None and value not in col.allowed:
            out.append(("unknown_currency", col.name))
    return out


def _landing_files(root: Path, contract):
    manifest = json.loads((root / "truth" / "manifest.json").read_text())
    for entry in manifest["files"]:
        spec = contract.feed(entry["system"], entry["feed"])
        header, lines = _records(root / "landing" / entry["path"], spec)
        yield entry, spec, header, lines


def _bad_rows(root: Path) -> dict:
    by_file = defaultdict(dict)
    for row in _read_csv(root / "truth" / "bad_rows.csv"):
        by_file[row["file"]][int(row["record_no"])] = row
    return by_file


def test_same_seed_same_bytes_and_other_seed_differs(bank, tmp_path):
    """Same seed and params give byte-identical files; another seed gives other data."""
    root, _ = bank
    again = tmp_path / "again"
    _generate(again, PARAMS)
    other = tmp_path / "other"
    _generate(other, DatagenParams(customers=300, seed=7, days=2))

    def snapshot(base: Path) -> dict:
        return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}

    first = snapshot(root)
    assert first == snapshot(again)
    changed = snapshot(other)
    assert set(changed) == set(first)
    assert sum(first[k] != changed[k] for k in first) >= len(first) - 4


def test_manifest_matches_files_headers_and_layout(bank, contract):
    """Every manifest entry is a file at the contract path with the contract header and its record count."""
    root, manifest = bank
    assert manifest == json.loads((root / "truth" / "manifest.json").read_text())
    assert manifest["params"]["start_date"] == "2026-10-01"
    seen = set()
    for entry, spec, header, lines in _landing_files(root, contract):
        day = dt.date.fromisoformat(entry["landing_date"])
        ext = "csv" if spec.file_format == "csv" else "jsonl"
        assert entry["path"] == f"{spec.system}/{spec.feed}/date={day}/{spec.feed}_{day:%Y%m%d}.{ext}"
        assert entry["records"] == len(lines)
        if spec.file_format == "csv":
            assert header == spec.delimiter.join(h + spec.header_suffix for h in spec.headers)
        seen.add((spec.system, spec.feed, entry["landing_date"]))
    assert len(seen) == len(contract.feeds) * PARAMS.days
    landed = {p.relative_to(root / "landing").as_posix() for p in (root / "landing").rglob("*.*")}
    assert landed == {e["path"] for e in manifest["files"]}


def test_contract_quirks_are_spelled_as_sources_yaml_says(bank, contract):
    """BOM and padded CRM headers, cards semicolons and names, upper-case core headers."""
    root, manifest = bank
    first = {e["system"] + "/" + e["feed"]: e["path"] for e in manifest["files"] if e["landing_date"] == "2026-10-01"}
    crm = (root / "landing" / first["crm/contacts"]).read_bytes()
    assert crm.startswith("\ufeffcontact_id ,salutation ,first_name ,".encode())
    cards = (root / "landing" / first["cards/customers"]).read_text(encoding="utf-8")
    assert cards.startswith("Card Customer ID;Full Name;Date of Birth;")
    assert re.search(r"\n[^;\n]*;[A-Z' -]+, [A-Z][^;]*;\d\d/\d\d/\d{4};", cards)
    core = (root / "landing" / first["core_banking/customers"]).read_text(encoding="utf-8")
    assert core.startswith("CUST_NO,NATIONAL_ID,TITLE,FIRST_NAME,")
    assert spark_to_strftime("yyyy-MM-dd'T'HH:mm:ss'Z'") == "%Y-%m-%dT%H:%M:%SZ"
    assert spark_to_strftime("dd/MM/yyyy HH:mm") == "%d/%m/%Y %H:%M"


def test_bad_rows_show_exactly_their_defect(bank, contract):
    """Each bad row in the truth shows its stated defect and nothing else; every reason occurs."""
    root, manifest = bank
    bad = _bad_rows(root)
    assert sum(len(v) for v in bad.values()) == sum(e["bad"] for e in manifest["files"])
    reasons = set()
    for entry, spec, _, lines in _landing_files(root, contract):
        marked = bad.get(entry["path"], {})
        assert len(marked) == entry["bad"]
        keys_before: dict = {}
        for no, line in enumerate(lines, start=1):
            values = _parse(line, spec)
            key = None if values is None else tuple(values[spec.names.index(k)] for k in spec.key)
            row = marked.get(no)
            if row is None:
                keys_before.setdefault(key, no)
                continue
            reasons.add(row["reason"])
            if row["reason"] == "truncated_record":
                assert values is None, (entry["path"], no)
                if spec.file_format == "csv":
                    assert '"' not in line and len(line.split(spec.delimiter)) < len(spec.columns)
            elif row["reason"] == "duplicate_key":
                assert values is not None and _violations(values, spec) == []
                assert key in keys_before and keys_before[key] not in marked, (entry["path"], no)
            else:
                assert values is not None, (entry["path"], no)
                assert _violations(values, spec) == [(row["reason"], row["field"])], (entry["path"], no)
                keys_before.setdefault(key, no)
    assert reasons == REASONS


def test_clean_rows_pass_every_contract_rule(bank, contract):
    """Rows not listed as bad pass required, min, domain, date-format and unique-key rules."""
    root, _ = bank
    bad = _bad_rows(root)
    checked = 0
    for entry, spec, _, lines in _landing_files(root, contract):
        marked = bad.get(entry["path"], {})
        keys = set()
        for no, line in enumerate(lines, start=1):
            if no in marked:
                continue
            values = _parse(line, spec)
            assert values is not None, (entry["path"], no)
            assert _violations(values, spec) == [], (entry["path"], no, line)
            key = tuple(values[spec.names.index(k)] for k in spec.key)
            assert key not in keys, (entry["path"], no)
            keys.add(key)
            checked += 1
    assert checked > 20000


def _customer_rows(root: Path, contract) -> dict:
    """(system, record id) -> clean parsed customer row as a dict of canonical names."""
    bad = _bad_rows(root)
    out = {}
    for entry, spec, _, lines in _landing_files(root, contract):
        if CUSTOMER_FEEDS.get(spec.system) != spec.feed:
            continue
        for no, line in enumerate(lines, start=1):
            if no not in bad.get(entry["path"], {}):
                row = dict(zip(spec.names, _parse(line, spec)))
                out[(spec.system, row[spec.key[0]])] = row
    return out


def test_records_truth_matches_customer_files(bank, contract):
    """records.csv covers every landed customer record and most persons sit in several systems."""
    root, _ = bank
    truth = {(r["system"], r["record_id"]): r["person_id"] for r in _read_csv(root / "truth" / "records.csv")}
    landed = _customer_rows(root, contract)
    assert set(landed) <= set(truth)
    assert len(landed) >= 0.97 * len(truth)
    per_person = defaultdict(set)
    for (system, _), person in truth.items():
        per_person[person].add(system)
    assert sum(len(s) >= 2 for s in per_person.values()) > 0.6 * len(per_person)


def _digits(phone):
    digits = re.sub(r"\D", "", phone or "")
    return digits[2:] if digits.startswith("44") else digits.lstrip("0")


def _first_name(row: dict):
    if "full_name" in row:
        # Cards write "LAST, First M": the first word after the comma.
        given = (row["full_name"] or ",").split(",", 1)[1].split()
        return given[0] if given else None
    return row.get("first_name")


def test_same_person_varies_across_systems(bank, contract):
    """One person looks different per system: phone styles, nicknames or typos, email case."""
    root, _ = bank
    truth = {(r["system"], r["record_id"]): r["person_id"] for r in _read_csv(root / "truth" / "records.csv")}
    persons = {r["person_id"]: r for r in _read_csv(root / "truth" / "persons.csv")}
    phones, firsts, emails = defaultdict(set), defaultdict(set), defaultdict(set)
    for (system, rid), row in _customer_rows(root, contract).items():
        person = truth[(system, rid)]
        phone = row.get("phone") or row.get("mobile")
        if phone:
            phones[person].add(phone)
        firsts[person].add(_first_name(row))
        if row.get("email"):
            emails[person].add(row["email"])
    same_number_other_style = [p for p, v in phones.items() if len(v) > 1 and len({_digits(x) for x in v}) == 1]
    assert len(same_number_other_style) > 20
    renamed = [p for p, v in firsts.items() if len(v) > 1 and persons[p]["first_name"] in v]
    assert len(renamed) >= 5
    recased = [p for p, v in emails.items() if len(v) > 1 and len({e.lower() for e in v}) == 1]
    assert recased


def test_look_alikes_share_name_and_address_but_not_birth(bank):
    """Look-alike pairs share name and address but not birth date; namesakes live elsewhere."""
    root, _ = bank
    persons = {r["person_id"]: r for r in _read_csv(root / "truth" / "persons.csv")}
    pairs = {tuple(sorted((p, r["look_alike_of"]))) for p, r in persons.items() if r["look_alike_of"]}
    assert pairs
    for a, b in pairs:
        pa, pb = persons[a], persons[b]
        for field in ("first_name", "last_name", "address_line1", "postcode", "household_id"):
            assert pa[field] == pb[field]
        assert pa["date_of_birth"] != pb["date_of_birth"] and a != b
    namesakes = [(p, r["namesake_of"]) for p, r in persons.items() if r["namesake_of"]]
    assert all(persons[p]["city"] != persons[q]["city"] for p, q in namesakes)
    households = defaultdict(int)
    for r in persons.values():
        households[r["household_id"]] += 1
    shared = sum(n for n in households.values() if n > 1)
    assert 0.08 * len(persons) < shared < 0.3 * len(persons)


def test_hidden_labels_point_at_landed_rows(bank, contract):
    """Churn share is plausible, fraud labels name landed transactions, offers have all outcomes."""
    root, _ = bank
    churn = _read_csv(root / "truth" / "labels" / "churn.csv")
    share = sum(r["is_churner"] == "1" for r in churn) / len(churn)
    assert 0.03 < share < 0.15
    fraud = {r["txn_id"] for r in _read_csv(root / "truth" / "labels" / "fraud_transactions.csv")}
    assert fraud
    landed = set()
    for entry, spec, _, lines in _landing_files(root, contract):
        if (spec.system, spec.feed) == ("cards", "transactions"):
            landed |= {line.split(";", 1)[0] for line in lines}
    assert fraud <= landed
    offers = _read_csv(root / "truth" / "labels" / "offers.csv")
    assert {r["outcome"] for r in offers} == {"accepted", "declined", "none"}


def test_truth_stays_outside_landing_and_reruns_replace(tmp_path):
    """Truth inside landing is refused; a rerun replaces earlier files and leaves no staging dirs."""
    with pytest.raises(ValueError):
        generate_bank(DatagenParams(customers=20), tmp_path / "l", tmp_path / "l" / "truth", SOURCES)
    small = DatagenParams(customers=40, days=2)
    _generate(tmp_path, small)
    _generate(tmp_path, DatagenParams(customers=40, days=1))
    dates = {p.name for p in (tmp_path / "landing").rglob("date=*")}
    assert dates == {"date=2026-10-01"}
    assert not list((tmp_path / "landing").rglob("*.json")) and not (tmp_path / "landing" / "truth").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_generator_reads_the_contract_through_the_catalog_and_its_errors(tmp_path):
    from c360.config import ConfigError

    text = SOURCES.read_text(encoding="utf-8")
    broken = tmp_path / "sources.yaml"
    broken.write_text(text.replace("allowed: currency", "allowed: currencies", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\.yaml: systems\.\w+\.feeds\.\w+\.columns\.\w+: unknown domain 'currencies'"):
        generate_bank(PARAMS, tmp_path / "landing", tmp_path / "truth", broken)
    assert not (tmp_path / "landing").exists()


def test_source_variant_drops_and_degrades_customer_fields(tmp_path):
    """A SourceVariant empties the fields it drops in every customer feed, keeps one record per person per
    system when asked, and is recorded in the manifest; the default variant is the default bank."""
    assert SourceVariant().is_default
    with pytest.raises(ValueError, match="unknown fields"):
        SourceVariant(drop_fields=("shoe_size",))
    variant = SourceVariant(drop_fields=("email", "national_id"), extra_dob_missing=0.3, name_swap_rate=0.05,
                            one_record_per_system=True)
    params = DatagenParams(customers=60, seed=3, days=1)
    manifest = generate_bank(params, tmp_path / "landing", tmp_path / "truth", SOURCES, variant=variant)
    assert list(manifest["variant"]["drop_fields"]) == ["email", "national_id"]
    with open(next((tmp_path / "landing" / "core_banking" / "customers").rglob("*.csv")), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(not r["EMAIL"] and not r["NATIONAL_ID"] for r in rows if r.get("UPDATED_AT"))
    assert 0.2 < sum(not r["DATE_OF_BIRTH"] for r in rows) / len(rows) < 0.5
    truth = _read_csv(tmp_path / "truth" / "records.csv")
    held = [(r["system"], r["person_id"]) for r in truth]
    assert len(held) == len(set(held))
