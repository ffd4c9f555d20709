"""Specification of :mod:`mammotriage.model.datasets`: public data sets read in their real
layouts, patient-level stratified splits, class balance."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fixtures_datasets import (
    VINDR_MASS_BOX,
    VINDR_NORMAL,
    VINDR_SUSPICIOUS,
    cbis_ddsm,
    rsna,
    vindr,
)
from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.errors import ConfigError
from mammotriage.model.datasets import (
    balanced_sample_weights,
    class_weights,
    detect_kind,
    load_cbis_ddsm,
    load_dataset,
    load_rsna,
    load_synthetic,
    load_vindr,
    split_by_attribute,
    split_by_patient,
)
from mammotriage.model.records import ImageRecord, make_attrs
from mammotriage.synth.batch import generate

L, R = Laterality.LEFT, Laterality.RIGHT


def by_view(records: list[ImageRecord]) -> dict[tuple[str, str, str], ImageRecord]:
    return {(r.patient_id, r.laterality.value, r.view.value): r for r in records}


def drop_column(path: Path, column: str) -> None:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in rows[0] if c != column]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


# --- records ----------------------------------------------------------------------------------


def test_record_knows_its_breast_and_attributes() -> None:
    record = ImageRecord(
        Path("a.dcm"),
        "P1",
        "E1",
        L,
        ViewPosition.CC,
        1,
        attrs=make_attrs({"density": "B", "subtlety": 3, "site_id": " ", "birads": None}),
    )
    assert record.breast_id == "E1/L"
    assert record.attr("density") == "B" and record.attr("subtlety") == "3"
    assert record.attr("site_id") is None and record.attr("birads") is None


def test_record_rejects_impossible_values() -> None:
    with pytest.raises(ValueError, match='"label"'):
        ImageRecord(Path("a.dcm"), "P1", "E1", L, ViewPosition.CC, 2)
    with pytest.raises(ValueError, match='"boxes"'):
        ImageRecord(Path("a.dcm"), "P1", "E1", L, ViewPosition.CC, 1, boxes=((5.0, 0.0, 1.0, 1.0),))


def test_record_round_trips_through_a_dict() -> None:
    record = ImageRecord(
        Path("a.dcm"),
        "P1",
        "E1",
        R,
        ViewPosition.MLO,
        1,
        boxes=((1.0, 2.0, 3.0, 4.0),),
        attrs=make_attrs({"split": "test"}),
    )
    assert ImageRecord.from_dict(record.to_dict()) == record


# --- synthetic ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, exams=4, small=True, workers=1)
    return root


def test_synthetic_records_follow_the_truth_file(synthetic_root: Path) -> None:
    records = load_synthetic(synthetic_root)
    assert len(records) == 16 and all(r.path.is_file() for r in records)
    assert len({r.patient_id for r in records}) == 4
    cancers = [r for r in records if r.label == 1]
    assert cancers and len({r.breast_id for r in cancers}) == 1
    assert all(r.boxes for r in cancers) and not any(r.boxes for r in records if r.label == 0)
    assert {r.attr("density") for r in records} <= {"A", "B", "C", "D"}
    assert all(r.attr("subtlety") and r.attr("lesion_type") for r in cancers)
    assert all(r.attr("manufacturer") for r in records)
    assert detect_kind(synthetic_root) == "synthetic"


def test_synthetic_without_a_truth_column_names_it(tmp_path: Path, synthetic_root: Path) -> None:
    (tmp_path / "truth.csv").write_bytes((synthetic_root / "truth.csv").read_bytes())
    drop_column(tmp_path / "truth.csv", "patient_id")
    with pytest.raises(ConfigError, match="patient_id"):
        load_synthetic(tmp_path)


# --- RSNA -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kaggle_layout", [True, False])
def test_rsna_reads_labels_views_and_attributes(tmp_path: Path, kaggle_layout: bool) -> None:
    records = load_rsna(rsna(tmp_path, kaggle_layout=kaggle_layout))
    assert len(records) == 9
    views = by_view(records)
    assert views[("10006", "L", "CC")].label == 1 and views[("10006", "R", "CC")].label == 0
    assert views[("10011", "R", "AT")].view is ViewPosition.AT
    first = views[("10006", "L", "MLO")]
    assert first.exam_id == "10006" and first.boxes == ()
    assert first.attr("age") == "61" and first.attr("density") == "C"
    assert first.attr("machine_id") == "29" and first.attr("site_id") == "2"
    assert views[("10011", "L", "CC")].attr("density") is None
    assert views[("10011", "L", "CC")].attr("birads") == "1"
    assert all(r.path.is_file() for r in records)


def test_rsna_is_detected(tmp_path: Path) -> None:
    rsna(tmp_path)
    assert detect_kind(tmp_path) == "rsna"
    assert len(load_dataset(tmp_path)) == 9


def test_rsna_without_the_cancer_column_names_it(tmp_path: Path) -> None:
    rsna(tmp_path)
    drop_column(tmp_path / "train.csv", "cancer")
    with pytest.raises(ConfigError, match="'cancer'"):
        load_rsna(tmp_path)


def test_rsna_with_an_unknown_view_names_row_and_value(tmp_path: Path) -> None:
    rsna(tmp_path)
    text = (tmp_path / "train.csv").read_text().replace(",AT,", ",XYZ,")
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(ConfigError, match=r"line 10, column 'view'.*'XYZ'"):
        load_rsna(tmp_path)


def test_rsna_leaves_out_missing_images_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rsna(tmp_path)
    (tmp_path / "train_images" / "10011" / "1168472910.dcm").unlink()
    with caplog.at_level(logging.WARNING):
        records = load_rsna(tmp_path)
    assert len(records) == 8 and "1 of 9" in caplog.text


def test_rsna_with_no_images_where_expected_is_a_layout_error(tmp_path: Path) -> None:
    rsna(tmp_path)
    (tmp_path / "train_images").rename(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"<patient_id>/<image_id>\.dcm"):
        load_rsna(tmp_path)


# --- VinDr-Mammo --------------------------------------------------------------------------------


def test_vindr_labels_birads_4_and_5_and_boxes_their_findings(tmp_path: Path) -> None:
    records = load_vindr(vindr(tmp_path))
    assert len(records) == 8
    views = by_view(records)
    left_cc = views[(VINDR_SUSPICIOUS, "L", "CC")]
    assert left_cc.label == 1 and left_cc.boxes == (VINDR_MASS_BOX,)
    assert left_cc.attr("birads") == "4" and left_cc.attr("lesion_type") == "mass"
    assert left_cc.patient_id == left_cc.exam_id == VINDR_SUSPICIOUS
    assert views[(VINDR_SUSPICIOUS, "L", "MLO")].boxes == (VINDR_MASS_BOX,)
    right = views[(VINDR_SUSPICIOUS, "R", "CC")]
    assert right.label == 0 and right.boxes == () and right.attr("birads") == "3"
    normal = [r for r in records if r.patient_id == VINDR_NORMAL]
    assert all(r.label == 0 and r.boxes == () for r in normal)
    assert {r.attr("split") for r in normal} == {"test"}
    assert {r.attr("density") for r in records} == {"C"}
    assert all(r.path.suffix == ".dicom" and r.path.is_file() for r in records)


def test_vindr_is_detected_and_keeps_the_official_split(tmp_path: Path) -> None:
    vindr(tmp_path)
    assert detect_kind(tmp_path) == "vindr"
    subsets = split_by_attribute(load_dataset(tmp_path), "split")
    assert {k: len(v) for k, v in subsets.items()} == {"training": 4, "test": 4}


def test_vindr_without_a_finding_column_names_it(tmp_path: Path) -> None:
    vindr(tmp_path)
    drop_column(tmp_path / "finding_annotations.csv", "xmax")
    with pytest.raises(ConfigError, match="finding_annotations.csv lacks column.*'xmax'"):
        load_vindr(tmp_path)


def test_vindr_without_the_finding_file_names_it(tmp_path: Path) -> None:
    vindr(tmp_path)
    (tmp_path / "finding_annotations.csv").unlink()
    with pytest.raises(ConfigError, match="finding_annotations.csv"):
        load_vindr(tmp_path)


# --- CBIS-DDSM ----------------------------------------------------------------------------------


def test_cbis_ddsm_gives_one_record_per_image(tmp_path: Path) -> None:
    records = load_cbis_ddsm(cbis_ddsm(tmp_path))
    views = by_view(records)
    assert sorted(views) == [
        ("P_00001", "L", "CC"),
        ("P_00001", "L", "MLO"),
        ("P_00038", "R", "CC"),
    ]
    left_cc = views[("P_00001", "L", "CC")]
    assert left_cc.label == 1 and left_cc.exam_id == "P_00001"
    assert left_cc.attr("subtlety") == "4"  # the malignant abnormality's, not the benign 2
    assert left_cc.attr("lesion_type") == "calcification+mass"
    assert left_cc.attr("density") == "C" and left_cc.attr("split") == "training"
    benign = views[("P_00038", "R", "CC")]
    assert benign.label == 0 and benign.attr("density") == "B" and benign.attr("split") == "test"


def test_cbis_ddsm_finds_the_full_mammogram_in_the_tcia_layout(tmp_path: Path) -> None:
    views = by_view(load_cbis_ddsm(cbis_ddsm(tmp_path)))
    path = views[("P_00001", "L", "CC")].path
    assert path.parts[-4] == "Mass-Training_P_00001_LEFT_CC" and path.name == "1-1.dcm"
    assert views[("P_00038", "R", "CC")].path.name == "000000.dcm"


def test_cbis_ddsm_is_detected(tmp_path: Path) -> None:
    cbis_ddsm(tmp_path)
    assert detect_kind(tmp_path) == "cbis-ddsm"


def test_cbis_ddsm_without_the_pathology_column_names_it(tmp_path: Path) -> None:
    cbis_ddsm(tmp_path)
    drop_column(tmp_path / "calc_case_description_test_set.csv", "pathology")
    with pytest.raises(ConfigError, match="calc_case_description_test_set.csv.*'pathology'"):
        load_cbis_ddsm(tmp_path)


# --- kinds ----------------------------------------------------------------------------------------


def test_unknown_kind_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synthetic, rsna, vindr, cbis-ddsm.*'inbreast'"):
        load_dataset(tmp_path, "inbreast")


def test_an_unrecognised_folder_says_what_each_layout_needs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="breast-level_annotations.csv"):
        load_dataset(tmp_path)


# --- splits and balance -------------------------------------------------------------------------


def population(patients: int = 200, cancer_every: int = 10) -> list[ImageRecord]:
    """Four views per patient; every ``cancer_every``-th patient has a left cancer."""
    records = []
    for p in range(patients):
        for lat in (L, R):
            for view in (ViewPosition.CC, ViewPosition.MLO):
                label = int(p % cancer_every == 0 and lat is L)
                records.append(
                    ImageRecord(
                        Path(f"{p}/{lat.value}{view.value}.dcm"),
                        f"P{p:04d}",
                        f"E{p:04d}",
                        lat,
                        view,
                        label,
                    )
                )
    return records


def test_split_never_puts_a_patient_in_two_subsets() -> None:
    subsets = split_by_patient(population())
    patients = [{r.patient_id for r in s} for s in subsets.values()]
    assert sum(len(p) for p in patients) == len(set().union(*patients)) == 200


def test_split_is_deterministic_and_independent_of_order() -> None:
    records = population()
    first = split_by_patient(records, seed=3)
    again = split_by_patient(list(reversed(records)), seed=3)
    other = split_by_patient(records, seed=4)
    assert {k: {r.patient_id for r in v} for k, v in first.items()} == {
        k: {r.patient_id for r in v} for k, v in again.items()
    }
    assert first["test"] != other["test"]


def test_split_respects_fractions_and_puts_cancers_in_every_subset() -> None:
    subsets = split_by_patient(population(), {"train": 0.7, "val": 0.15, "test": 0.15})
    sizes = {k: len({r.patient_id for r in v}) for k, v in subsets.items()}
    assert sizes == {"train": 140, "val": 30, "test": 30}
    cancers = {k: len({r.patient_id for r in v if r.label}) for k, v in subsets.items()}
    assert cancers == {"train": 14, "val": 3, "test": 3}


def test_split_gives_every_subset_a_cancer_even_when_they_are_rare() -> None:
    subsets = split_by_patient(population(40, cancer_every=13))  # 4 cancer patients
    assert all(any(r.label for r in s) for s in subsets.values())


def test_split_rejects_fractions_that_do_not_sum_to_one() -> None:
    with pytest.raises(ValueError, match='"fractions"'):
        split_by_patient(population(10), {"train": 0.8, "test": 0.3})


def test_class_weights_balance_the_classes() -> None:
    records = population()  # 40 cancer images of 800
    weights = class_weights(records)
    assert weights[1] / weights[0] == pytest.approx(760 / 40)
    samples = balanced_sample_weights(records)
    labels = np.array([r.label for r in records])
    assert samples[labels == 1].sum() == pytest.approx(samples[labels == 0].sum())
    assert samples.mean() == pytest.approx(1.0)


def test_class_weights_need_both_classes() -> None:
    with pytest.raises(ValueError, match="class 1"):
        class_weights([r for r in population() if r.label == 0])


def test_dataset_code_does_not_import_torch() -> None:
    code = (
        "import sys; import mammotriage.model.records, mammotriage.model.datasets, "
        "mammotriage.model.cache; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_balanced_draws_hold_both_classes_equally() -> None:
    records = population()
    weights = balanced_sample_weights(records)
    draws = np.random.default_rng(0).choice(len(records), 20_000, p=weights / weights.sum())
    counts = Counter(records[i].label for i in draws)
    assert abs(counts[1] / 20_000 - 0.5) < 0.02
