"""The backfill's pieces without Ray: inputs and manifests, the index, exams prepared in
one place and scored in another, the rows written, the rerun check."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mammotriage import defaults
from mammotriage.backfill.index import FROM_MANIFEST, group, header_keys
from mammotriage.backfill.inputs import InputFile, collect_inputs
from mammotriage.backfill.rows import exam_rows, failed_rows
from mammotriage.backfill.run import BackfillOptions, _check_request, _request
from mammotriage.backfill.schema import EXAM_SCHEMA, FAILED, IMAGE_SCHEMA, PARTIAL, UNSCORED
from mammotriage.dicom import group_exams
from mammotriage.errors import ConfigError
from mammotriage.infer.engine import ScoringEngine
from mammotriage.infer.exam_batch import prepare_exam, score_prepared
from mammotriage.triage import load_policy
from worker_helpers import damaged_duplicate

MODEL = defaults.model_path()


@pytest.fixture(scope="module")
def archive(tmp_path_factory, tiny_synthetic: Path) -> Path:
    """Four synthetic exams; one with a damaged later copy of a view (it wins the slot and
    does not decode, so the scorer must fall back), one missing a view, plus a text file."""
    root = tmp_path_factory.mktemp("archive")
    exams = sorted(p for p in tiny_synthetic.iterdir() if p.is_dir())[:4]
    for exam in exams:
        shutil.copytree(exam, root / exam.name)
    first = sorted((root / exams[0].name).glob("*.dcm"))[0]
    damaged_duplicate(first, first.with_name("zz-damaged.dcm"))
    sorted((root / exams[1].name).glob("*.dcm"))[-1].unlink()
    (root / "notes.dcm").write_text("not a mammogram\n")
    return root


def test_exams_prepared_apart_and_scored_together_equal_the_engine(archive: Path) -> None:
    with ScoringEngine(MODEL, decode_workers=0) as engine:
        expected = {e.exam_id: e for e in engine.score_paths([archive])}
        images = engine.read_headers([archive])
        prepared = [prepare_exam(exam, engine.params) for exam in group_exams(images)]
        got = {e.exam_id: e for e in score_prepared(engine.model, prepared, batch_size=3)}
    assert got.keys() == expected.keys()
    fell_back = 0
    for exam_id, want in expected.items():
        have = got[exam_id]
        assert (have.score is None) == (want.score is None)
        if want.score is not None:
            assert have.score == pytest.approx(want.score, abs=1e-5)
        assert have.category == want.category
        assert have.partial == want.partial and have.missing == want.missing
        assert [(im.path, im.usable, im.reason) for im in have.images] == [
            (im.path, im.usable, im.reason) for im in want.images
        ]
        assert [(f.sop_instance_uid, f.score) for f in have.findings] == [
            (f.sop_instance_uid, f.score) for f in want.findings
        ]
        fell_back += sum("was tried in its place" in (im.reason or "") for im in have.images)
    assert fell_back == 1  # the damaged copy handed its view to the original


def test_folders_and_manifests_become_one_list_of_absolute_files(tmp_path: Path) -> None:
    folder = tmp_path / "dicom"
    (folder / "a").mkdir(parents=True)
    for name in ("a/1.dcm", "a/2.dcm", "3.dcm"):
        (folder / name).write_bytes(b"x")
    manifests = tmp_path / "lists"
    manifests.mkdir()
    with (manifests / "archive.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "exam_id"])
        writer.writerow(["../dicom/a/1.dcm", "EXAM-1"])  # relative to the manifest
        writer.writerow([str(folder / "3.dcm"), ""])  # no exam named: grouped by header
    pq.write_table(
        pa.table({"path": [str(folder / "a" / "2.dcm")], "exam_id": ["EXAM-2"]}),
        manifests / "more.parquet",
    )
    files = collect_inputs([manifests / "archive.csv", manifests / "more.parquet", folder])
    assert files == [
        InputFile(str(folder / "3.dcm"), None),
        InputFile(str(folder / "a" / "1.dcm"), "EXAM-1"),
        InputFile(str(folder / "a" / "2.dcm"), "EXAM-2"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,exam_id\nx.dcm,1\n", "no 'path' column"),
        ("path,exam_id\n,1\n", "row 2 has no path"),
    ],
)
def test_a_bad_manifest_is_refused_with_what_is_wrong(tmp_path, content, message) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(content)
    with pytest.raises(ConfigError, match=message):
        collect_inputs([manifest])


def test_a_file_named_for_two_exams_or_a_missing_input_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1.dcm").write_bytes(b"x")
    (tmp_path / "a.csv").write_text("path,exam_id\n1.dcm,A\n")
    (tmp_path / "b.csv").write_text("path,exam_id\n1.dcm,B\n")
    with pytest.raises(ConfigError, match="listed for two exams"):
        collect_inputs([tmp_path / "a.csv", tmp_path / "b.csv"])
    with pytest.raises(ConfigError, match="no such file or folder"):
        collect_inputs([tmp_path / "nowhere"])


def test_the_index_groups_as_score_does_sorted_and_sharded(archive: Path) -> None:
    files = collect_inputs([archive])
    keyed = header_keys({"path": [f.path for f in files]})
    keys = list(zip(keyed["path"], keyed["exam_id"], keyed["exam_id_source"], strict=True))
    exams = group(files, keys, shard_size=2)
    with ScoringEngine(MODEL, decode_workers=0) as engine:
        by_score = {e.exam_id: e for e in group_exams(engine.read_headers([archive]))}
    assert [e.exam_id for e in exams] == sorted(by_score)
    for exam in exams:
        assert set(exam.paths) == {str(im.path) for im in by_score[exam.exam_id].images}
    assert [e.shard for e in exams] == [n // 2 for n in range(len(exams))]
    # the same inputs in another order give the same manifest
    assert group(list(reversed(files)), list(reversed(keys)), shard_size=2) == exams
    named = group([InputFile("/x/1.dcm", "E1"), InputFile("/x/2.dcm", "E1")], [], 5)
    assert [(e.exam_id, e.exam_id_source, e.paths) for e in named] == [
        ("E1", FROM_MANIFEST, ("/x/1.dcm", "/x/2.dcm"))
    ]


def test_rows_carry_outcome_reason_decision_and_device(archive: Path) -> None:
    policy = load_policy(defaults.policy_path())
    with ScoringEngine(MODEL, decode_workers=0) as engine:
        exams = group_exams(engine.read_headers([archive]))
        scored = {e.exam_id: e for e in engine.score_exams(exams)}
    rows = {}
    for exam in exams:
        row, images = exam_rows(exam, scored[exam.exam_id], policy, shard=7, demonstration=True)
        pa.Table.from_pylist([row], schema=EXAM_SCHEMA)  # fits the schema
        pa.Table.from_pylist(images, schema=IMAGE_SCHEMA)
        rows[exam.exam_id] = (row, images)
    statuses = sorted(row["status"] for row, _ in rows.values())
    assert statuses == ["partial", "scored", "scored", "scored", "unscored"]
    partial = next(row for row, _ in rows.values() if row["status"] == PARTIAL)
    assert partial["reason"].startswith("no ") and partial["missing"] in partial["reason"]
    text = next((row, im) for row, im in rows.values() if row["status"] == UNSCORED)
    assert text[0]["reading_mode"] == "double" and text[0]["priority"] is False
    assert text[0]["score"] is None and "no image could be scored" in text[0]["reason"]
    assert text[1][0]["usable"] is False and text[1][0]["reason"]
    for row, images in rows.values():
        assert row["images_usable"] + row["images_unusable"] == len(images)
        assert row["shard"] == 7 and row["demonstration_model"] is True
        if row["status"] != UNSCORED:
            assert row["manufacturer"] and row["manufacturer_model_name"]
            assert math.isfinite(row["score"]) and 1 <= row["category"] <= 10
            assert row["policy_version"] == policy.version
    failed, images = failed_rows(
        "E9", "manifest", ["/b.dcm", "/a.dcm"], "boom", policy,
        shard=1, model_name="m", model_sha256="0" * 64, demonstration=True,
    )
    pa.Table.from_pylist([failed], schema=EXAM_SCHEMA)
    assert (failed["status"], failed["reading_mode"], failed["images_unusable"]) == (
        FAILED, "double", 2,
    )
    assert [im["path"] for im in images] == ["/a.dcm", "/b.dcm"]


def test_a_rerun_into_the_folder_of_another_backfill_is_refused(tmp_path: Path) -> None:
    options = BackfillOptions(model=MODEL, shard_size=4)
    first = _request([tmp_path / "in"], options, "a" * 64)
    assert _check_request(tmp_path, first) is False
    assert json.loads((tmp_path / "backfill.json").read_text())["shard_size"] == 4
    assert _check_request(tmp_path, first) is True  # the same: a resumed run
    with pytest.raises(ConfigError, match="another model sha256"):
        _check_request(tmp_path, _request([tmp_path / "in"], options, "b" * 64))
    with pytest.raises(ConfigError, match="another inputs"):
        _check_request(tmp_path, _request([tmp_path / "other"], options, "a" * 64))
