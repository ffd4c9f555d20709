"""Specification of :mod:`mammotriage.infer.engine`: files in, one scored exam per exam out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dicom_builders import mg_dataset, write
from infer_builders import double_unless_boom, tiny_model, view_pixels, write_exam, write_view
from mammotriage.dicom import Laterality, group_exams
from mammotriage.dicom.model import Slot
from mammotriage.infer.engine import ScoringEngine
from mammotriage.sidecar import Aggregation

# Blobs near the chest wall (left for L views, right for R views) of a 96 x 64 image.
L_BLOB = ((4, 30, 34, 60), 1.0)
R_BLOB = ((30, 30, 60, 60), 0.9)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def exams_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three four-view exams: a blob in L-CC, one in R-MLO, none."""
    root = tmp_path_factory.mktemp("exams")
    write_exam(root / "a", study="1.2.826.0.1.3680043.8.498.101", blobs={("L", "CC"): L_BLOB})
    write_exam(root / "b", study="1.2.826.0.1.3680043.8.498.102", blobs={("R", "MLO"): R_BLOB})
    write_exam(root / "c", study="1.2.826.0.1.3680043.8.498.103")
    return root


def by_id(exams):
    return {e.exam_id: e for e in exams}


def scores_of(exams) -> dict[str, list]:
    return {e.exam_id: [e.score, *(im.score for im in e.images)] for e in exams}


def test_every_exam_gets_a_score_category_and_breast_scores(model, exams_folder):
    with ScoringEngine(model) as engine:
        exams = by_id(engine.score_paths([exams_folder]))
    assert len(exams) == 3
    a = exams["1.2.826.0.1.3680043.8.498.101"]
    assert not a.partial and len(a.images) == 4
    assert a.breasts[Laterality.LEFT] > a.breasts[Laterality.RIGHT]
    assert a.score == pytest.approx(max(im.score for im in a.images))
    assert a.category == 1 + sum(a.score > t for t in (10, 20, 30, 40, 50, 60, 70, 80, 90))
    assert a.findings and a.findings[0].laterality.value == "L"
    b = exams["1.2.826.0.1.3680043.8.498.102"]
    assert b.breasts[Laterality.RIGHT] > b.breasts[Laterality.LEFT]
    assert a.model_name == "tiny-brightness" and len(a.model_sha256) == 64


def test_batches_across_exams_score_as_one_image_at_a_time(model, exams_folder):
    with ScoringEngine(model, batch_size=1, decode_workers=0) as one:
        single = scores_of(one.score_paths([exams_folder]))
    with ScoringEngine(model, batch_size=5, decode_workers=2) as five:
        batched = scores_of(five.score_paths([exams_folder]))
    assert batched.keys() == single.keys()
    for exam_id, values in single.items():
        assert batched[exam_id] == pytest.approx(values, abs=1e-4)


def test_a_process_pool_scores_as_the_thread_pool_does(model, exams_folder):
    with ScoringEngine(model, decode_workers=2, executor="thread") as threads:
        expected = scores_of(threads.score_paths([exams_folder]))
    with ScoringEngine(model, decode_workers=1, executor="process") as processes:
        got = scores_of(processes.score_paths([exams_folder]))
    assert got.keys() == expected.keys()
    for exam_id, values in expected.items():
        assert got[exam_id] == pytest.approx(values)


def test_a_file_that_kills_a_decode_process_is_pinned_on_that_file_alone(model):
    items = ["a", "b", "boom", "c", "d", "e"]
    with ScoringEngine(model, decode_workers=2, executor="process") as engine:
        results = list(
            engine.decoder.ordered_map(double_unless_boom, items, lambda item: "crashed", depth=4)
        )
        # the restarted pool carries on for later work
        again = engine.decoder.ordered_map(double_unless_boom, ["f"], str, depth=1)
        assert list(again) == [("f", "ff")]
    assert results == [
        ("a", "aa"),
        ("b", "bb"),
        ("boom", "crashed"),
        ("c", "cc"),
        ("d", "dd"),
        ("e", "ee"),
    ]


def test_unusable_files_are_listed_with_their_reason_never_raised(model, tmp_path):
    study = "1.2.826.0.1.3680043.8.498.201"
    write_exam(tmp_path, study=study, views=(("L", "CC"), ("L", "MLO"), ("R", "MLO")))
    write(
        mg_dataset(Modality="CT", BodyPartExamined="CHEST", StudyInstanceUID=study),
        tmp_path / "ct.dcm",
    )
    (tmp_path / "garbage.dcm").write_bytes(b"not dicom at all" * 10)
    with ScoringEngine(model) as engine:
        exams = engine.score_paths([tmp_path])
    exam = next(e for e in exams if e.exam_id == study)
    record = json.loads(exam.to_json())
    ct = next(im for im in record["images"] if im["path"].endswith("ct.dcm"))
    assert ct["usable"] is False and "not a mammogram" in ct["reason"] and ct["score"] is None
    assert exam.partial and exam.missing == (Slot.R_CC,) and exam.score is not None
    lone = next(e for e in exams if any(str(im.path).endswith("garbage.dcm") for im in e.images))
    assert lone.score is None and lone.category is None
    assert lone.images[0].usable is False and lone.images[0].reason
    assert json.loads(lone.to_json())["score"] is None


def test_a_file_that_fails_to_decode_after_its_header_was_read_is_an_unusable_image(
    model, tmp_path
):
    study = "1.2.826.0.1.3680043.8.498.301"
    write_exam(tmp_path, study=study)
    with ScoringEngine(model) as engine:
        images = engine.read_headers([tmp_path])
        (tmp_path / "RMLO.dcm").unlink()
        [exam] = engine.score_exams(group_exams(images))
    gone = next(im for im in exam.images if im.path.name == "RMLO.dcm")
    assert not gone.usable and "cannot read file" in gone.reason
    assert exam.partial and exam.missing == (Slot.R_MLO,) and exam.score is not None


def test_a_duplicate_view_is_listed_as_not_scored_with_the_choice(model, tmp_path):
    study = "1.2.826.0.1.3680043.8.498.401"
    write_exam(tmp_path, study=study)
    write_view(tmp_path / "LCC-old.dcm", "L", "CC", study=study, AcquisitionDateTime="20000101")
    write_view(tmp_path / "LCC-new.dcm", "L", "CC", study=study, AcquisitionDateTime="20300101")
    with ScoringEngine(model) as engine:
        [exam] = engine.score_paths([tmp_path])
    unscored = [im for im in exam.images if im.usable and im.score is None]
    assert len(unscored) == 2 and len(exam.images) == 6
    assert all("another image was chosen for L-CC" in im.reason for im in unscored)
    assert not exam.partial


def test_the_sidecar_decides_mean_aggregation(tmp_path, exams_folder):
    mean = tiny_model(tmp_path / "mean", aggregation=Aggregation(breast="mean", exam="max"))
    with ScoringEngine(mean) as engine:
        exam = by_id(engine.score_paths([exams_folder]))["1.2.826.0.1.3680043.8.498.101"]
    left = [im.score for im in exam.images if im.laterality.value == "L"]
    assert exam.breasts[Laterality.LEFT] == pytest.approx(sum(left) / 2)


def test_exams_come_back_in_order_as_they_finish(model, exams_folder):
    seen = []
    with ScoringEngine(model, batch_size=3) as engine:
        for exam in engine.iter_paths(
            [exams_folder], progress=lambda label, done, total: seen.append((label, done))
        ):
            seen.append(exam.exam_id)
    ids = [s for s in seen if isinstance(s, str)]
    assert ids == sorted(ids)
    # the first exam was handed back before the last image was scored
    assert seen.index(ids[0]) < seen.index(("scoring", 12))


def test_large_image_pixels_are_not_kept(model, tmp_path):
    """Only tensors and transforms outlive preprocessing: the header pass keeps no pixels."""
    write_view(
        tmp_path / "big.dcm",
        "R",
        "CC",
        study="1.2.826.0.1.3680043.8.498.501",
        pixels=view_pixels("R", "CC", rows=1024, columns=512),
    )
    with ScoringEngine(model) as engine:
        images = engine.read_headers([tmp_path])
        assert images[0].pixels is None
        [exam] = engine.score_exams(group_exams(images))
    assert exam.score is not None


def test_bad_arguments_are_refused_by_name(model):
    with pytest.raises(ValueError, match="batch_size"):
        ScoringEngine(model, batch_size=0)
    with pytest.raises(ValueError, match="executor"):
        ScoringEngine(model, executor="gpu")  # type: ignore[arg-type]


def test_inference_modules_never_import_torch():
    code = (
        "import sys, mammotriage.infer, mammotriage.infer.engine, mammotriage.infer.calibrate, "
        "mammotriage.cli.scoring; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _damaged_copy(good: Path, copy: Path, **attrs) -> Path:
    """``good`` with its UIDs and ``attrs``, JPEG 2000 coded with its coded packets
    overwritten: the header reads, the pixels do not decode."""
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(good)
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.compress(JPEG2000Lossless)
    data = bytearray(ds.PixelData)
    sod = data.find(b"\xff\x93")  # start of data: everything after is coded packets
    data[sod + 2 : -8] = b"\xff" * (len(data) - sod - 10)
    ds.PixelData = bytes(data)
    ds.save_as(copy)
    return copy


def test_a_damaged_duplicate_that_wins_the_view_falls_back_to_the_copy_that_decodes(
    model, tmp_path
):
    """Issue 11 item 8: the damaged copy (same UIDs, latest acquisition) won the L-CC slot,
    failed to decode, and the good copy holding the lesion was left "not scored"."""
    study = "1.2.826.0.1.3680043.8.498.501"
    write_exam(tmp_path, study=study, blobs={("L", "CC"): L_BLOB})
    _damaged_copy(tmp_path / "LCC.dcm", tmp_path / "LCC-z-copy.dcm", AcquisitionDateTime="20300101")
    with ScoringEngine(model) as engine:
        [reference] = engine.score_paths(
            [tmp_path / n for n in ("LCC.dcm", "LMLO.dcm", "RCC.dcm", "RMLO.dcm")]
        )
        [exam] = engine.score_paths([tmp_path])
    assert len(exam.images) == 5
    damaged = next(im for im in exam.images if im.path.name == "LCC-z-copy.dcm")
    good = next(im for im in exam.images if im.path.name == "LCC.dcm")
    assert not damaged.usable and damaged.reason and "L-CC" in damaged.reason
    assert good.usable and good.score is not None and good.reason is None
    assert not exam.partial and exam.missing == ()
    assert exam.score == pytest.approx(reference.score)
    assert exam.findings and exam.findings[0].path.name == "LCC.dcm"


@pytest.fixture(scope="module")
def full_size_j2k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full-size (3328 x 2560, the hologic-like detector) JPEG 2000 lossless view."""
    from pydicom.uid import JPEG2000Lossless

    from dicom_builders import breast_pixels

    ds = mg_dataset(
        breast_pixels(3328, 2560),
        ImageLaterality="L",
        ViewPosition="CC",
        StudyInstanceUID="1.2.826.0.1.3680043.8.498.601",
    )
    ds.compress(JPEG2000Lossless)
    return write(ds, tmp_path_factory.mktemp("full-size") / "LCC.dcm")


def test_a_decode_past_its_time_budget_is_stopped_and_the_file_marked(model, full_size_j2k):
    """Isolation: a real decode (a full-size JPEG 2000 file) runs past a 0.01 s budget in a
    decode process, which is killed; the file becomes an unusable image with the reason,
    and the same engine goes on scoring."""
    with ScoringEngine(model) as reader:
        headers = reader.read_headers([full_size_j2k])
    exams = group_exams(headers)
    with ScoringEngine(model, executor="process", decode_workers=1, decode_timeout=0.01) as engine:
        [stopped] = engine.score_exams(exams)
        [image] = stopped.images
        assert not image.usable and "time budget of 0.01 s" in image.reason
        assert stopped.score is None
        engine.decoder.timeout = 120.0  # the restarted pool decodes within a sane budget
        [scored] = engine.score_exams(exams)
    assert scored.images[0].usable and scored.score is not None


def test_a_decode_budget_needs_decode_processes(model):
    with pytest.raises(ValueError, match="time budget"):
        ScoringEngine(model, decode_timeout=1.0)


def test_a_decode_process_killed_by_the_kernel_is_pinned_on_its_file(model, full_size_j2k):
    """A real death: the decode process runs under a CPU-time limit and the kernel kills it
    (SIGXCPU) while it decodes the full-size file; the small file decodes. Only the file
    whose decode killed its process twice (in the pool, then alone) is marked crashed, and
    the pool restarts for the next item."""
    from decode_helpers import decode_under_cpu_limit

    small = write(mg_dataset(), full_size_j2k.parent / "small.dcm")
    items = [small, full_size_j2k, small]
    with ScoringEngine(model, decode_workers=1, executor="process") as engine:
        results = list(
            engine.decoder.ordered_map(
                decode_under_cpu_limit, items, lambda item: "crashed", depth=2
            )
        )
    assert results == [(small, "decoded"), (full_size_j2k, "crashed"), (small, "decoded")]


def _what(exams) -> dict[str, list]:
    """Per exam: its category, and each image's path, usability and reason."""
    return {
        e.exam_id: [e.category, *((im.path, im.usable, im.reason) for im in e.images)]
        for e in exams
    }


def test_prepared_then_scored_in_two_steps_equals_scoring_in_one(model, exams_folder, tmp_path):
    """The worker's pipeline decodes (``prepare_exams``) and scores (``score_prepared``) in
    stages of their own: the same exams, scores, reasons and fall-back as ``score_exams``,
    a damaged duplicate that wins a view included."""
    study = "1.2.826.0.1.3680043.8.498.502"
    write_exam(tmp_path, study=study, blobs={("L", "CC"): L_BLOB})
    _damaged_copy(tmp_path / "LCC.dcm", tmp_path / "LCC-z-copy.dcm", AcquisitionDateTime="20300101")
    with ScoringEngine(model, batch_size=3) as engine:
        exams = group_exams(engine.read_headers([exams_folder, tmp_path]))
        expected = engine.score_exams(exams)
        prepared = engine.prepare_exams(exams)
        got = engine.score_prepared(prepared)
    assert [p.exam for p in prepared] == exams
    assert _what(got) == _what(expected)
    for exam_id, values in scores_of(expected).items():
        assert scores_of(got)[exam_id] == pytest.approx(values, abs=1e-5)
    [fallen] = [e for e in got if e.exam_id == study]
    assert not fallen.partial and any("L-CC" in (im.reason or "") for im in fallen.images)


def test_a_keep_function_gets_each_decoded_view_and_the_decoder_is_recorded(model, exams_folder):
    """What else needs the pixels is made in the same decode (``keep``), once per scored
    view; every scored image names the codec that read it."""
    with ScoringEngine(model, decode_workers=1) as engine:
        exams = group_exams(engine.read_headers([exams_folder]))
        prepared = engine.prepare_exams(exams, keep=_decoded_shape)
        scores = engine.score_prepared(prepared)
    for exam in prepared:
        assert len(exam.inputs) == 4
        for index, image in exam.inputs:
            assert image.kept == (exam.exam.images[index].rows, exam.exam.images[index].columns)
    assert all(im.decoder for score in scores for im in score.images if im.score is not None)


def _decoded_shape(image) -> tuple[int, int]:
    """A keep function (module level: a process pool would pickle it by name)."""
    assert image.pixels is not None
    return image.rows, image.columns


def test_two_threads_mapping_through_one_process_pool_pin_a_crash_on_its_file(model):
    """The worker decodes two studies at once through one decode pool: a file that kills a
    decode process in one thread's work is pinned on that file alone, and every item of
    both threads comes back, the other thread's included (its items in the broken pool
    are run again)."""
    import threading

    first = ["a", "b", "boom", "c", "d", "e"]
    second = [f"x{n}" for n in range(12)]
    results: dict[str, list] = {}
    with ScoringEngine(model, decode_workers=2, executor="process") as engine:

        def run(name: str, items: list[str]) -> None:
            mapped = engine.decoder.ordered_map(
                double_unless_boom, items, lambda i: "crashed", depth=4
            )
            results[name] = list(mapped)

        threads = [
            threading.Thread(target=run, args=("first", first)),
            threading.Thread(target=run, args=("second", second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
    assert results["first"] == [(i, "crashed" if i == "boom" else i * 2) for i in first]
    assert results["second"] == [(i, i * 2) for i in second]
