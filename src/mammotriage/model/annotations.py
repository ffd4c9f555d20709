"""Reading the annotation CSVs of public mammography data sets, shared by their adapters.

The data set adapters (:mod:`.datasets`, :mod:`.datasets_cbis`) read the publishers' own
CSV files. This module checks a CSV's header before any row is read, names the file, line
and column of a bad value, and parses the cell values the publishers write (laterality and
view codes, 0/1 flags, numbers that went through pandas, BI-RADS density in either edition).

No torch here: validation of an exported ONNX model reads data sets too.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TypeVar

from mammotriage.errors import ConfigError

E = TypeVar("E", bound=Enum)

__all__ = [
    "cell",
    "clean",
    "density_letter",
    "parse_binary",
    "parse_enum",
    "parse_number",
    "read_csv",
]

#: DDSM's density 1-4 is the BI-RADS 4th-edition scale; its letters are the 5th edition's.
_DENSITY_LETTERS = {"1": "A", "2": "B", "3": "C", "4": "D"}


def read_csv(path: Path, required: Sequence[str], what: str) -> list[dict[str, str]]:
    """Rows of an annotation CSV as stripped strings, after checking the header.

    Raises
    ------
    ConfigError
        If the file is missing, lacks a required column, or has no rows.
    """
    if not path.is_file():
        raise ConfigError(f"{what}: expected the annotation file {path}, which does not exist.")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in required if c not in header]
        if missing:
            raise ConfigError(
                f"{what}: {path} lacks column(s) {', '.join(map(repr, missing))} "
                f"(has: {', '.join(header) or 'no header'})."
            )
        rows = [
            {k: v.strip() if isinstance(v, str) else "" for k, v in row.items() if k is not None}
            for row in reader
        ]
    if not rows:
        raise ConfigError(f"{what}: {path} has a header but no rows.")
    return rows


def cell(path: Path, line: int, column: str) -> str:
    # Line numbers count the header as line 1, as an editor shows them.
    return f"{path} line {line + 2}, column {column!r}"


def parse_enum(kind: type[E], value: str, where: str) -> E:
    try:
        return kind(value.upper())
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise ConfigError(f"{where}: unknown value {value!r}; expected one of {allowed}.") from None


def parse_binary(value: str, where: str) -> int:
    number = parse_number(value)
    if number not in (0.0, 1.0):
        raise ConfigError(f"{where}: expected 0 or 1, got {value!r}.")
    return int(number or 0)


def parse_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def clean(value: str) -> str:
    """Tidy what a pandas round trip does to numbers ("2.0" -> "2") and to missing ("nan")."""
    number = parse_number(value)
    if number is not None and number.is_integer():
        return str(int(number))
    return "" if value.lower() == "nan" else value


def density_letter(value: str) -> str:
    """BI-RADS density as a letter, whichever spelling: "C", "DENSITY C", "3"."""
    text = clean(value).upper().replace("DENSITY", "").strip()
    return _DENSITY_LETTERS.get(text, text if text in ("A", "B", "C", "D") else "")
