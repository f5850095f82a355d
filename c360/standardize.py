"""Column standardisers for silver: names, emails, phones (E.164), postcodes, addresses. Built-ins only."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

_E164 = r"^\+[1-9][0-9]{7,14}$"
# Street-type abbreviations the source systems use interchangeably with the full word.
_STREET_WORDS = {"st": "Street", "rd": "Road", "ave": "Avenue", "ln": "Lane", "dr": "Drive", "ct": "Court",
                 "pl": "Place", "sq": "Square", "cres": "Crescent", "gdns": "Gardens"}


def blank_to_null(col: Column) -> Column:
    """Trimmed value, or null when empty."""
    trimmed = F.trim(col)
    return F.when(trimmed != "", trimmed)


def clean_name(col: Column) -> Column:
    """A personal name in title case, letters, spaces, hyphens and apostrophes only ("j. o'BRIEN" -> "J O'brien")."""
    letters = F.regexp_replace(col, r"[^\p{L}\s'\-]", " ")
    return blank_to_null(F.initcap(F.regexp_replace(letters, r"\s+", " ")))


def clean_title(col: Column) -> Column:
    """Salutation without punctuation in title case ("MR." -> "Mr")."""
    return blank_to_null(F.initcap(F.regexp_replace(col, r"[^A-Za-z]", "")))


def clean_email(col: Column) -> Column:
    """Lower-cased e-mail address, or null when it has no single @ with text on both sides."""
    email = F.lower(F.trim(col))
    return F.when(email.rlike(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), email)


def phone_e164(col: Column, country_code: str) -> Column:
    """Phone number in E.164 ("07700 900123" -> "+447700900123"); null when it cannot be one."""
    # "+44 (0)7700 ..." writes the national trunk prefix in brackets; it is not dialled with +44.
    digits = F.regexp_replace(F.regexp_replace(col, r"\(0\)", ""), r"[^0-9]", "")
    plus = F.trim(col).startswith("+")
    candidate = (
        F.when(plus, F.concat(F.lit("+"), digits))
        .when(digits.startswith("00"), F.concat(F.lit("+"), F.substring(digits, 3, 20)))
        .when(digits.startswith(country_code) & (F.length(digits) > 10), F.concat(F.lit("+"), digits))
        .when(digits.startswith("0"), F.concat(F.lit("+" + country_code), F.substring(digits, 2, 20)))
    )
    return F.when(candidate.rlike(_E164), candidate)


def clean_postcode(col: Column) -> Column:
    """UK-style postcode upper-cased with one space before the inward code ("ls11ab" -> "LS1 1AB")."""
    compact = F.upper(F.regexp_replace(col, r"\s+", ""))
    return blank_to_null(F.regexp_replace(compact, r"^(.+)([0-9][A-Z]{2})$", "$1 $2"))


def clean_address_line(col: Column) -> Column:
    """Address line in title case with street-type abbreviations spelled out ("12 high st." -> "12 High Street")."""
    text = F.initcap(F.regexp_replace(F.regexp_replace(col, r"[.,]", " "), r"\s+", " "))
    for short, word in _STREET_WORDS.items():
        text = F.regexp_replace(text, rf"(?i)\b{short}\b", word)
    return blank_to_null(text)


def clean_code(col: Column, upper: bool = True) -> Column:
    """A code value trimmed and upper- (or lower-) cased."""
    return blank_to_null(F.upper(col) if upper else F.lower(col))
