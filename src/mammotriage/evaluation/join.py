"""The backfill's exam rows, and their join with the outcomes file.

The join is where an evaluation most easily lies without anyone noticing: an exam id
typed differently in the registry, a month of exams missing from the archive export. So
nothing is dropped silently: the exams without an outcome and the outcomes without an
exam are kept as their own tables, counted in the report and written out in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mammotriage.backfill.schema import EXAM_SCHEMA, FAILED, STATUSES, UNSCORED, exam_files
from mammotriage.errors import ConfigError
from mammotriage.evaluation.outcomes import CANCER_COLUMNS, RECALL, Outcomes

#: Columns of EXAM_SCHEMA that evaluate reads; a file lacking one is refused.
EXAM_COLUMNS = (
    "exam_id",
    "accession_number",
    "status",
    "reason",
    "score",
    "category",
    "max_finding_score",
    "partial",
    "policy_version",
    "model_name",
    "model_sha256",
    "demonstration_model",
    "manufacturer",
    "manufacturer_model_name",
    "station_name",
)
#: Statuses whose exams have no score: people double-read them.
NOT_SCORED = (UNSCORED, FAILED)
_SHOWN = 10


def load_exams(scores: Path) -> pd.DataFrame:
    """The exam rows of a backfill output folder (``exams/part-*.parquet``), one per exam.

    Adds ``scored`` (the exam has a score and a category) and ``device`` (manufacturer,
    model name and station name joined by " / ", a missing part shown as "unknown").

    Raises
    ------
    ConfigError
        If the folder is missing or has no finished exam files, a file lacks a column of
        :data:`~mammotriage.backfill.schema.EXAM_SCHEMA` that evaluate needs or cannot be
        read, a status is unknown, a scored exam lacks its score or category, or an exam id
        appears more than once.
    """
    folder = Path(scores)
    if not folder.is_dir():
        raise ConfigError(f"scores folder {folder} not found (give a backfill --out folder)")
    files = exam_files(folder)
    if not files:
        raise ConfigError(
            f"scores folder {folder} holds no exams/part-*.parquet: not a backfill output, "
            "or no shard has finished"
        )
    schema = pa.schema([EXAM_SCHEMA.field(name) for name in EXAM_COLUMNS])
    tables = []
    for file in files:
        try:
            names = pq.read_schema(file).names
            lacking = [c for c in EXAM_COLUMNS if c not in names]
            if lacking:
                raise ConfigError(f"{file} lacks column(s) {', '.join(lacking)}")
            tables.append(pq.read_table(file, columns=list(EXAM_COLUMNS)).cast(schema))
        except (pa.ArrowException, OSError) as exc:
            raise ConfigError(f"{file} is not a readable exam file: {exc}") from exc
    exams = pa.concat_tables(tables).to_pandas(types_mapper=_nullable)
    _check_exams(exams, folder)
    exams["scored"] = exams["score"].notna().to_numpy()
    exams["device"] = device_names(exams)
    return exams.reset_index(drop=True)


def _nullable(arrow_type: pa.DataType) -> object:
    """pandas' nullable dtypes for Arrow columns, so a null int stays <NA>, not a float."""
    mapping: dict[pa.DataType, object] = {
        pa.string(): pd.StringDtype(),
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.bool_(): pd.BooleanDtype(),
        pa.float64(): pd.Float64Dtype(),
    }
    return mapping.get(arrow_type)


def _check_exams(exams: pd.DataFrame, folder: Path) -> None:
    unknown = sorted(set(exams["status"].dropna()) - set(STATUSES))
    if unknown:
        raise ConfigError(f"{folder}: unknown exam status(es) {unknown} (known: {STATUSES})")
    has_score = exams["score"].notna() & exams["category"].notna()
    should = ~exams["status"].isin(NOT_SCORED)
    broken = exams.loc[should & ~has_score, "exam_id"].tolist()
    if broken:
        raise ConfigError(
            f"{folder}: {len(broken)} exam(s) with status scored/partial lack a score or "
            f"category, e.g. {broken[:_SHOWN]}"
        )
    exams.loc[~should, ["score", "category"]] = pd.NA
    duplicated = exams.loc[exams["exam_id"].duplicated(), "exam_id"].unique().tolist()
    if duplicated:
        raise ConfigError(
            f"{folder}: {len(duplicated)} exam id(s) appear in more than one row, "
            f"e.g. {duplicated[:_SHOWN]} (two backfills in one folder?)"
        )


def device_names(exams: pd.DataFrame) -> pd.Series:
    """``manufacturer / model name / station name`` per exam; a missing part is "unknown"."""
    parts = [
        exams[c].astype("string").str.strip().replace("", pd.NA).fillna("unknown")
        for c in ("manufacturer", "manufacturer_model_name", "station_name")
    ]
    return (parts[0] + " / " + parts[1] + " / " + parts[2]).astype(object)


@dataclass(frozen=True)
class Joined:
    """Exams with their outcomes, and what did not match.

    ``exams`` is every exam (the outcome columns are <NA> where there is no outcome;
    ``matched`` says which have one); ``exams_without_outcome`` lists the exam ids (and
    accession numbers) with no outcome row; ``outcomes_without_exam`` the outcome rows
    (key and line) whose exam is not in the scores.
    """

    key: str
    exams: pd.DataFrame
    exams_without_outcome: pd.DataFrame
    outcomes_without_exam: pd.DataFrame


def join_outcomes(exams: pd.DataFrame, outcomes: Outcomes) -> Joined:
    """Outer-join exams and outcomes on the outcomes' key (exam id or accession number).

    Raises
    ------
    ConfigError
        If the key is the accession number and two exams share one (the outcome could
        belong to either), listing them.
    """
    key = outcomes.key
    left = exams.assign(_key=exams[key].astype("string").str.strip())
    if key == "accession_number":
        shared = left.loc[left["_key"].notna() & left["_key"].duplicated(), "_key"]
        if not shared.empty:
            values = sorted(shared.unique().tolist())
            raise ConfigError(
                f"{len(values)} accession number(s) belong to more than one exam in the "
                f"scores, so their outcomes cannot be placed: {values[:_SHOWN]}"
            )
    right = outcomes.table.rename(columns={"key": "_key"})
    # Exams without a key (no accession number) can match nothing: keep them out of the
    # merge, which would pair a null key with nothing anyway, and add them back unmatched.
    keyless = left[left["_key"].isna()]
    merged = pd.merge(
        left[left["_key"].notna()],
        right,
        on="_key",
        how="outer",
        indicator=True,
        validate="one_to_one",
    )
    only_outcome = merged[merged["_merge"] == "right_only"]
    outcomes_without_exam = pd.DataFrame(
        {key: only_outcome["_key"].astype(object), "line": only_outcome["line"].astype("int64")}
    ).sort_values("line")
    joined = pd.concat([merged[merged["_merge"] != "right_only"], keyless], ignore_index=True)
    joined["matched"] = (joined["_merge"] == "both").to_numpy()
    for column in CANCER_COLUMNS:
        joined[column] = joined[column].astype("boolean")
    joined[RECALL] = joined[RECALL].astype("boolean")
    joined = joined.drop(columns=["_key", "_merge", "line"])
    unmatched = joined.loc[~joined["matched"], ["exam_id", "accession_number"]]
    return Joined(
        key=key,
        exams=joined.reset_index(drop=True),
        exams_without_outcome=unmatched.sort_values("exam_id").reset_index(drop=True),
        outcomes_without_exam=outcomes_without_exam.reset_index(drop=True),
    )
