"""The outcomes CSV: what it accepts, and the one-line error naming file:line for what not."""

from __future__ import annotations

import pandas as pd
import pytest
from evaluation_builders import write_outcomes

from mammotriage.errors import ConfigError
from mammotriage.evaluation.outcomes import read_outcomes


def test_reads_keys_and_flags_in_every_accepted_spelling(tmp_path):
    path = write_outcomes(
        tmp_path / "o.csv",
        [("e1", "1", "0", "yes"), ("e2", "False", "TRUE", "no"), ("e3", " 0 ", "no", "")],
    )
    outcomes = read_outcomes(path)
    table = outcomes.table
    assert outcomes.key == "exam_id" and len(outcomes) == 3
    assert table["key"].tolist() == ["e1", "e2", "e3"]
    assert table["screen_detected_cancer"].tolist() == [True, False, False]
    assert table["interval_cancer"].tolist() == [False, True, False]
    assert table["recall"].tolist()[:2] == [True, False]
    assert pd.isna(table["recall"].iloc[2])  # empty recall: unknown, not "no"
    assert table["line"].tolist() == [2, 3, 4]


def test_accession_number_is_the_key_when_exam_id_is_absent(tmp_path):
    path = write_outcomes(
        tmp_path / "o.csv",
        [("A1", 0, 0)],
        header=("accession_number", "screen_detected_cancer", "interval_cancer"),
    )
    outcomes = read_outcomes(path)
    assert outcomes.key == "accession_number"
    assert outcomes.table["key"].tolist() == ["A1"]
    assert pd.isna(outcomes.table["recall"].iloc[0])  # no recall column: unknown


def test_exam_id_wins_when_both_keys_are_given(tmp_path):
    path = write_outcomes(
        tmp_path / "o.csv",
        [("A1", "e1", 0, 0, 0)],
        header=(
            "accession_number",
            "exam_id",
            "screen_detected_cancer",
            "interval_cancer",
            "recall",
        ),
    )
    outcomes = read_outcomes(path)
    assert outcomes.key == "exam_id" and outcomes.table["key"].tolist() == ["e1"]


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([("e1", "", 0, 0)], None, "o.csv:2: screen_detected_cancer is empty"),
        (
            [("e1", 0, 0, 0), ("e2", 0, "2", 0)],
            None,
            "o.csv:3: interval_cancer must be 0 or 1 (or true/false, yes/no), got '2'",
        ),
        ([("e1", 0, 0, "maybe")], None, "o.csv:2: recall must be 0 or 1"),
        ([("", 0, 0, 0)], None, "o.csv:2: exam_id is empty"),
        ([("e1", 0, 0)], None, "o.csv:2: expected 4 cells (as the header), got 3"),
        ([("e1", 0, 0, 0, 1)], None, "o.csv:2: expected 4 cells (as the header), got 5"),
        (
            [("e1", 0, 0)],
            ("id", "screen_detected_cancer", "interval_cancer"),
            "o.csv:1: no key column: expected exam_id or accession_number",
        ),
        (
            [("e1", 0)],
            ("exam_id", "screen_detected_cancer"),
            "o.csv:1: missing column(s) interval_cancer",
        ),
    ],
)
def test_bad_rows_name_the_file_line_and_problem(tmp_path, rows, header, message):
    path = write_outcomes(tmp_path / "o.csv", rows, header=header)
    with pytest.raises(ConfigError) as caught:
        read_outcomes(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_duplicate_keys_are_listed(tmp_path):
    path = write_outcomes(
        tmp_path / "o.csv",
        [("e1", 0, 0, 0), ("e2", 0, 0, 0), ("e1", 1, 0, 1), ("e3", 0, 0, 0), ("e2", 0, 0, 0)],
    )
    with pytest.raises(ConfigError, match=r"2 exam_id value\(s\) appear more than once: e1, e2"):
        read_outcomes(path)


def test_missing_and_empty_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="outcomes file .*nowhere.csv not found"):
        read_outcomes(tmp_path / "nowhere.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        read_outcomes(tmp_path / "empty.csv")
