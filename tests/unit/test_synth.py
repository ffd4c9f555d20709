"""Specifications of the synthetic phantoms and the vendor-variant DICOM they are written as."""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_voi_lut
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.synth import (
    PROFILES,
    TRUTH_COLUMNS,
    ChestWall,
    Density,
    DetectorFormat,
    LesionType,
    TruthRow,
    generate,
    plan_exams,
    power_law_field,
    read_truth,
    render_view,
    sample_breast,
)

SMALL = DetectorFormat(3328, 2560, 0.065).small()
SHAPE = (SMALL.rows, SMALL.columns)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[TruthRow]]:
    """24 small exams (every profile four times), half of them with a cancer."""
    out = tmp_path_factory.mktemp("synth")
    rows = generate(out, 24, seed=3, small=True, prevalence=0.5, workers=2)
    return out, rows


def _breast(
    seed: int,
    lesion_type: LesionType | None = None,
    density: Density = Density.A,
    subtlety: int = 5,
    laterality: Laterality = Laterality.LEFT,
):
    return sample_breast(
        np.random.default_rng(seed),
        laterality,
        density,
        SMALL.field_mm,
        lesion_type,
        subtlety,
        shape_seed=seed,
    )


def _render(breast, view: ViewPosition = ViewPosition.CC, seed: int = 1, **kwargs):
    return render_view(np.random.default_rng(seed), breast, view, SHAPE, SMALL.spacing_mm, **kwargs)


def _dense_bright(ds: pydicom.Dataset) -> np.ndarray:
    """Stored pixels scaled to [0, 1] with dense tissue bright, whatever the profile."""
    arr = ds.pixel_array.astype(np.float64) / (2**ds.BitsStored - 1)
    return 1 - arr if ds.PhotometricInterpretation == "MONOCHROME1" else arr


# --- pixels -----------------------------------------------------------------------------


def test_same_seed_renders_identical_pixels() -> None:
    a = _render(_breast(7, LesionType.SPICULATED_MASS), seed=11)
    b = _render(_breast(7, LesionType.SPICULATED_MASS), seed=11)
    assert np.array_equal(a.pixels, b.pixels)
    assert a.box == b.box


def test_different_seeds_render_different_pixels() -> None:
    a = _render(_breast(7), seed=11)
    b = _render(_breast(7), seed=12)
    assert not np.array_equal(a.pixels, b.pixels)


def test_pixels_are_float32_in_unit_range_with_dark_air() -> None:
    view = _render(_breast(2))
    assert view.pixels.dtype == np.float32
    assert view.pixels.shape == SHAPE
    assert view.pixels.min() >= 0.0 and view.pixels.max() <= 1.0
    assert np.median(view.pixels[~view.breast_mask]) < 0.06
    assert np.median(view.pixels[view.breast_mask]) > 0.2


def test_chest_wall_follows_the_hanging_convention_unless_asked() -> None:
    right = _render(_breast(4, laterality=Laterality.RIGHT))
    left = _render(_breast(4, laterality=Laterality.LEFT))
    mirrored = _render(_breast(4, laterality=Laterality.RIGHT), chest_wall=ChestWall.LEFT)
    assert right.chest_wall is ChestWall.RIGHT and left.chest_wall is ChestWall.LEFT
    for view, wall in ((right, "right"), (left, "left"), (mirrored, "left")):
        columns = view.breast_mask.mean(axis=0)
        assert (columns[:5].mean() > columns[-5:].mean()) == (wall == "left")


def test_mlo_has_a_bright_pectoral_muscle_in_the_upper_chest_wall_corner() -> None:
    breast = _breast(5, density=Density.A)
    mlo = _render(breast, ViewPosition.MLO)
    cc = _render(breast, ViewPosition.CC)
    corner = (slice(0, SHAPE[0] // 10), slice(0, SHAPE[1] // 12))
    assert mlo.pixels[corner].mean() > 0.45
    assert mlo.pixels[corner].mean() > cc.pixels[corner].mean() + 0.2


@pytest.mark.parametrize("lesion_type", list(LesionType))
def test_lesion_box_lies_inside_the_breast(lesion_type: LesionType) -> None:
    for view in (ViewPosition.CC, ViewPosition.MLO):
        rendered = _render(_breast(21, lesion_type), view)
        box = rendered.box
        assert box is not None and box.x1 > box.x0 and box.y1 > box.y0
        cx, cy = (box.x0 + box.x1) // 2, (box.y0 + box.y1) // 2
        assert rendered.breast_mask[cy, cx]


@pytest.mark.parametrize("lesion_type", list(LesionType))
def test_lesion_raises_intensity_over_its_box_and_nowhere_else(lesion_type: LesionType) -> None:
    breast = _breast(8, lesion_type)
    with_lesion = _render(breast, seed=3)
    without = _render(dataclasses.replace(breast, lesion=None), seed=3)
    box = with_lesion.box
    assert box is not None
    diff = with_lesion.pixels - without.pixels
    inside = diff[box.y0 : box.y1, box.x0 : box.x1]
    outside = diff.copy()
    outside[box.y0 : box.y1, box.x0 : box.x1] = 0
    assert inside.mean() > 0.005
    assert np.abs(outside).max() < 0.5 * inside.max()


@pytest.mark.parametrize(
    "lesion_type",
    [LesionType.CIRCUMSCRIBED_MASS, LesionType.SPICULATED_MASS, LesionType.CALCIFICATION_CLUSTER],
)
def test_obvious_lesion_in_a_fatty_breast_is_brighter_than_its_surroundings(
    lesion_type: LesionType,
) -> None:
    rendered = _render(_breast(9, lesion_type, Density.A, subtlety=5))
    box = rendered.box
    assert box is not None
    pad = max(box.x1 - box.x0, box.y1 - box.y0)
    y0, y1 = max(box.y0 - pad, 0), min(box.y1 + pad, SHAPE[0])
    x0, x1 = max(box.x0 - pad, 0), min(box.x1 + pad, SHAPE[1])
    ring = rendered.pixels[y0:y1, x0:x1].copy()
    mask = rendered.breast_mask[y0:y1, x0:x1].copy()
    mask[box.y0 - y0 : box.y1 - y0, box.x0 - x0 : box.x1 - x0] = False
    box_values = rendered.pixels[box.y0 : box.y1, box.x0 : box.x1]
    if lesion_type is LesionType.CALCIFICATION_CLUSTER:
        assert box_values.max() > np.percentile(ring[mask], 99.5)
    else:
        assert box_values.mean() > ring[mask].mean() + 0.03


@pytest.mark.parametrize("lesion_type", list(LesionType))
def test_lesion_appears_in_both_views_at_the_same_distance_from_the_nipple(
    lesion_type: LesionType,
) -> None:
    breast = _breast(13, lesion_type, laterality=Laterality.RIGHT)
    distances = []
    for view in (ViewPosition.CC, ViewPosition.MLO):
        rendered = _render(breast, view)
        box = rendered.box
        assert box is not None
        cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
        nx, ny = rendered.nipple_xy
        distances.append(np.hypot(cx - nx, cy - ny) * SMALL.spacing_mm)
    assert breast.lesion is not None
    assert distances[0] == pytest.approx(distances[1], abs=4.0)
    assert distances[0] == pytest.approx(breast.lesion.position.nipple_distance_mm, abs=4.0)


def test_density_d_has_more_dense_tissue_than_density_a() -> None:
    fatty = _render(_breast(17, density=Density.A))
    dense = _render(_breast(17, density=Density.D))
    assert dense.pixels[dense.breast_mask].mean() > fatty.pixels[fatty.breast_mask].mean() + 0.1


def radial_power_spectrum(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum: (frequency in cycles/pixel, power)."""
    spectrum = np.abs(np.fft.fft2(field - field.mean())) ** 2
    fy = np.fft.fftfreq(field.shape[0])[:, None]
    fx = np.fft.fftfreq(field.shape[1])[None, :]
    freq = np.sqrt(fy**2 + fx**2).ravel()
    bins = np.linspace(0, 0.5, 65)
    idx = np.digitize(freq, bins)
    power = np.bincount(idx, spectrum.ravel(), minlength=bins.size + 1)[1 : bins.size]
    count = np.bincount(idx, minlength=bins.size + 1)[1 : bins.size]
    return (bins[:-1] + bins[1:]) / 2, power / np.maximum(count, 1)


def test_texture_power_spectrum_falls_as_f_to_the_minus_three() -> None:
    field = power_law_field(np.random.default_rng(0), (512, 512), beta=3.0)
    freq, power = radial_power_spectrum(field)
    keep = (freq > 0.01) & (freq < 0.3)
    slope = np.polyfit(np.log(freq[keep]), np.log(power[keep]), 1)[0]
    assert -3.5 < slope < -2.5


def test_render_rejects_a_landscape_shape_and_a_non_screening_view() -> None:
    with pytest.raises(ValueError, match="portrait"):
        render_view(np.random.default_rng(0), _breast(1), ViewPosition.CC, (100, 200), 1.0)
    with pytest.raises(ValueError, match="CC or MLO"):
        _render(_breast(1), ViewPosition.ML)


# --- planning ---------------------------------------------------------------------------


def test_prevalence_sets_the_number_of_cancer_exams() -> None:
    plans = plan_exams(200, seed=5, prevalence=0.2)
    assert sum(p.cancer_laterality is not None for p in plans) == 40
    assert all((p.lesion_type is None) == (p.cancer_laterality is None) for p in plans)
    assert plans == plan_exams(200, seed=5, prevalence=0.2)


def test_plan_rejects_an_impossible_prevalence() -> None:
    with pytest.raises(ValueError, match="prevalence"):
        plan_exams(4, prevalence=1.5)


# --- written data set -------------------------------------------------------------------


def test_truth_csv_has_the_agreed_columns_and_one_row_per_file(dataset) -> None:
    out, rows = dataset
    with (out / "truth.csv").open(newline="") as f:
        header = next(csv.reader(f))
    assert header[:9] == [
        "path",
        "exam_id",
        "laterality",
        "view",
        "cancer",
        "lesion_type",
        "box",
        "subtlety",
        "density",
    ]
    assert tuple(header) == TRUTH_COLUMNS
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.dcm"))
    assert sorted(r.path for r in rows) == files
    assert len(files) == 24 * 4
    assert read_truth(out / "truth.csv") == rows


def test_every_file_is_part10_and_decodes_to_its_truth_shape(dataset) -> None:
    out, rows = dataset
    for row in rows:
        ds = pydicom.dcmread(out / row.path)
        assert ds.preamble is not None and "TransferSyntaxUID" in ds.file_meta
        assert ds.file_meta.TransferSyntaxUID == row.transfer_syntax
        assert ds.pixel_array.shape == (row.rows, row.columns)
        assert ds.Modality == "MG" and ds.BodyPartExamined == "BREAST"
        assert ds.BitsAllocated == 16 and ds.HighBit == ds.BitsStored - 1
        assert int(ds.pixel_array.max()) < 2**ds.BitsStored


def test_the_mix_covers_every_variant_a_reader_must_handle(dataset) -> None:
    _, rows = dataset
    assert {r.photometric for r in rows} == {"MONOCHROME1", "MONOCHROME2"}
    assert {r.bits_stored for r in rows} == {12, 14, 16}
    assert {r.transfer_syntax for r in rows} == {
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        RLELossless,
        JPEG2000Lossless,
        JPEG2000,
        JPEGLSLossless,
    }
    assert {r.presentation_intent.value for r in rows} == {"FOR PRESENTATION", "FOR PROCESSING"}
    assert {r.label_style for r in rows} == {"structured", "view_code", "text"}
    assert {r.chest_wall for r in rows} == {ChestWall.LEFT, ChestWall.RIGHT}
    assert len({r.manufacturer for r in rows}) == len(PROFILES)
    assert all("SYNTH" in r.manufacturer for r in rows)


def test_exam_images_share_study_attributes_and_have_their_own_uids(dataset) -> None:
    out, rows = dataset
    by_exam: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for row in rows:
        by_exam[row.exam_id].append(pydicom.dcmread(out / row.path, stop_before_pixels=True))
    assert len(by_exam) == 24
    for exam_id, images in by_exam.items():
        assert len(images) == 4
        assert {ds.StudyInstanceUID for ds in images} == {exam_id}
        for keyword in ("PatientID", "AccessionNumber", "StudyDate", "PatientName"):
            assert len({str(ds.get(keyword)) for ds in images}) == 1
        assert len({ds.SOPInstanceUID for ds in images}) == 4
        assert all(ds.BreastImplantPresent == "NO" for ds in images)
    assert len({r.sop_instance_uid for r in rows}) == len(rows)


def test_laterality_and_view_are_where_each_profile_puts_them(dataset) -> None:
    out, rows = dataset
    codes = {"399162004": "CC", "399368009": "MLO", "R-10242": "CC", "R-10226": "MLO"}
    for row in rows:
        ds = pydicom.dcmread(out / row.path, stop_before_pixels=True)
        if row.label_style == "structured":
            assert ds.ImageLaterality == row.laterality.value
            assert ds.ViewPosition == row.view.value
        elif row.label_style == "view_code":
            assert "ImageLaterality" not in ds and "ViewPosition" not in ds
            assert ds.Laterality == row.laterality.value
            code = ds.ViewCodeSequence[0]
            assert code.CodingSchemeDesignator in ("SCT", "SRT")
            assert codes[code.CodeValue] == row.view.value
        else:
            for keyword in ("ImageLaterality", "Laterality", "ViewPosition", "ViewCodeSequence"):
                assert keyword not in ds
            text = ds.SeriesDescription.replace(" ", "")
            assert text.startswith(row.laterality.value + row.view.value)
    schemes = set()
    for row in rows:
        ds = pydicom.dcmread(out / row.path, stop_before_pixels=True)
        if "ViewCodeSequence" in ds:
            schemes.add(ds.ViewCodeSequence[0].CodingSchemeDesignator)
    assert schemes == {"SCT", "SRT"}


def test_stored_orientation_matches_truth_and_patient_orientation(dataset) -> None:
    out, rows = dataset
    with_orientation = 0
    for row in rows:
        ds = pydicom.dcmread(out / row.path)
        pixels = _dense_bright(ds)
        edge = max(row.columns // 20, 2)
        left, right = pixels[:, :edge].mean(), pixels[:, -edge:].mean()
        assert (left > right) == (row.chest_wall is ChestWall.LEFT), row.path
        if "PatientOrientation" in ds:
            with_orientation += 1
            expected_row = "A" if row.chest_wall is ChestWall.LEFT else "P"
            assert ds.PatientOrientation[0] == expected_row
    assert 0 < with_orientation < len(rows)


def test_truth_box_marks_the_breast_in_the_stored_file(dataset) -> None:
    out, rows = dataset
    cancer_rows = [r for r in rows if r.cancer]
    assert cancer_rows
    for row in cancer_rows:
        assert row.box is not None and row.lesion_type is not None and row.subtlety in range(1, 6)
        pixels = _dense_bright(pydicom.dcmread(out / row.path))
        box = row.box
        assert 0 <= box.x0 < box.x1 <= row.columns and 0 <= box.y0 < box.y1 <= row.rows
        assert pixels[box.y0 : box.y1, box.x0 : box.x1].mean() > pixels[:, :].min() + 0.1


def test_cancer_marks_both_views_of_one_breast_only(dataset) -> None:
    _, rows = dataset
    by_exam: dict[str, list[TruthRow]] = defaultdict(list)
    for row in rows:
        by_exam[row.exam_id].append(row)
    cancers = 0
    for images in by_exam.values():
        positive = [r for r in images if r.cancer]
        if positive:
            cancers += 1
            assert len(positive) == 2
            assert {r.view for r in positive} == {ViewPosition.CC, ViewPosition.MLO}
            assert {r.laterality for r in positive} == {positive[0].cancer_laterality}
            assert len({r.lesion_type for r in positive}) == 1
        assert all(r.box is None and r.lesion_type is None for r in images if not r.cancer)
    assert cancers == 12


def test_jpeg2000_codestreams_allow_reduced_resolution_decoding(dataset) -> None:
    out, rows = dataset
    checked = 0
    for row in rows:
        if row.transfer_syntax not in (JPEG2000Lossless, JPEG2000):
            continue
        ds = pydicom.dcmread(out / row.path)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        cod = frame.index(b"\xff\x52")
        decompositions = frame[cod + 9]
        assert decompositions + 1 >= 5
        if row.transfer_syntax == JPEG2000:
            assert ds.LossyImageCompression == "01"
            assert ds.LossyImageCompressionMethod == "ISO_15444_1"
        checked += 1
    assert checked >= 8


def test_for_processing_images_are_raw_and_carry_no_voi(dataset) -> None:
    out, rows = dataset
    raw = [r for r in rows if r.presentation_intent.value == "FOR PROCESSING"]
    assert raw
    for row in raw:
        ds = pydicom.dcmread(out / row.path)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2.1"
        assert ds.PixelIntensityRelationship == "LIN"
        assert "WindowCenter" not in ds and "VOILUTSequence" not in ds


def test_voi_variants_apply_with_pydicom(dataset) -> None:
    out, rows = dataset
    seen: Counter[str] = Counter()
    for row in rows:
        ds = pydicom.dcmread(out / row.path)
        if "VOILUTSequence" in ds:
            seen["lut"] += 1
        elif "WindowCenter" in ds and ds["WindowCenter"].VM > 1:
            seen["two_windows"] += 1
        elif ds.get("VOILUTFunction") == "SIGMOID":
            seen["sigmoid"] += 1
        else:
            continue
        shown = apply_voi_lut(ds.pixel_array, ds)
        assert shown.shape == ds.pixel_array.shape and np.ptp(shown) > 0
    assert set(seen) == {"lut", "two_windows", "sigmoid"}


def test_file_names_give_laterality_away_only_for_the_readable_profile(dataset) -> None:
    _, rows = dataset
    readable = {p.manufacturer for p in PROFILES if p.readable_file_names}
    for row in rows:
        name = Path(row.path).stem
        if row.manufacturer in readable:
            assert name == f"{row.laterality.value}_{row.view.value}"
        else:
            assert name.startswith("IMG")


def test_same_seed_writes_identical_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", 2, seed=9, small=True, workers=1)
    b = generate(tmp_path / "b", 2, seed=9, small=True, workers=1)
    assert a == b
    for row in a:
        assert (tmp_path / "a" / row.path).read_bytes() == (tmp_path / "b" / row.path).read_bytes()


def test_truth_uids_are_the_files_uids(dataset) -> None:
    out, rows = dataset
    for row in rows[:12]:
        ds = pydicom.dcmread(out / row.path, stop_before_pixels=True)
        assert ds.SOPInstanceUID == row.sop_instance_uid == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.StudyInstanceUID == row.exam_id
