"""The AI findings as a Grayscale Softcopy Presentation State: every finding a box on its own
image, read back from the written file exactly where the finding is, the category in the text
layer, a file dciodvfy finds no error in, and one our sources never take for an image."""

from __future__ import annotations

import dataclasses
import datetime
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom_builders import breast_pixels, mg_dataset
from mammotriage.dicom.gsps import (
    CATEGORY_LAYER,
    FINDINGS_LAYER,
    GSPS_SERIES_NUMBER,
    build_presentation_state,
)
from mammotriage.dicom.reader import screening_exclusion
from mammotriage.dicom.report import (
    SERIES_NUMBER,
    AlgorithmIdentity,
    ReportContent,
    ReportFinding,
    report_uids,
    write_report,
)
from mammotriage.worker.sources.http import is_own_report

GSPS_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"
ALGORITHM = AlgorithmIdentity(name="mammonet-b0", version="0.1.0", sha256="0123456789abcdef" * 4)
WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5)


def _exam(**attrs: object) -> list[Dataset]:
    """Four views of one woman, each in its own series, as many units write them."""
    study = generate_uid()
    common: dict[str, object] = {
        "PatientBirthDate": "19600101",
        "PatientSex": "F",
        "StudyID": "S1",
        "StudyTime": "101500",
        "WindowCenter": 2000,
        "WindowWidth": 4000,
    }
    return [
        mg_dataset(
            StudyInstanceUID=study,
            SeriesInstanceUID=generate_uid(),
            ImageLaterality=side,
            ViewPosition=view,
            **{**common, **attrs},
        )
        for side in ("L", "R")
        for view in ("CC", "MLO")
    ]


def _content(images: list[Dataset], **changes: object) -> ReportContent:
    """Three findings on two images: two on the left MLO, one on the right CC."""
    l_mlo, r_cc = images[1], images[2]
    content = ReportContent(
        exam_score=87.5,
        category=9,
        breasts={"L": 87.5, "R": 12.0},
        findings=(
            ReportFinding(l_mlo.SOPInstanceUID, "L", "MLO", (10.0, 20.0, 30.5, 41.0), 88),
            ReportFinding(l_mlo.SOPInstanceUID, "L", "MLO", (40.0, 50.0, 60.0, 90.25), 61),
            ReportFinding(r_cc.SOPInstanceUID, "R", "CC", (0.0, 0.0, 64.0, 96.0), 7),
        ),
        reading="double reading",
    )
    return dataclasses.replace(content, **changes)  # type: ignore[arg-type]


def _written(
    content: ReportContent, images: list[Dataset], tmp_path: Path, name: str = "gsps.dcm"
) -> tuple[Path, Dataset]:
    gsps = build_presentation_state(content, images, ALGORITHM, content_datetime=WHEN)
    assert gsps is not None
    path = write_report(gsps, tmp_path / name)
    return path, pydicom.dcmread(path)


def _annotations(ds: Dataset, layer: str) -> list[tuple[str, Dataset]]:
    """(referenced SOP Instance UID, annotation item) of every annotation in ``layer``."""
    found = []
    for item in ds.GraphicAnnotationSequence:
        if item.GraphicLayer == layer:
            (reference,) = item.ReferencedImageSequence
            found.append((str(reference.ReferencedSOPInstanceUID), item))
    return found


def _boxes_by_image(ds: Dataset) -> dict[str, list[tuple[float, float, float, float]]]:
    """Each closed POLYLINE in PIXEL units, as the (x0, y0, x1, y1) it outlines, by image."""
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    for uid, item in _annotations(ds, FINDINGS_LAYER):
        for graphic in item.GraphicObjectSequence:
            assert graphic.GraphicType == "POLYLINE"
            assert graphic.GraphicAnnotationUnits == "PIXEL"
            assert graphic.GraphicDimensions == 2
            points = np.asarray(graphic.GraphicData, dtype=float).reshape(-1, 2)
            assert len(points) == graphic.NumberOfGraphicPoints == 5
            assert tuple(points[0]) == tuple(points[-1]), "the box is not closed"
            (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
            # Every corner of the rectangle, and nothing else, is a point of the polyline.
            corners = {(x0, y0), (x1, y0), (x1, y1), (x0, y1)}
            assert {tuple(p) for p in points} == corners
            boxes.setdefault(uid, []).append((x0, y0, x1, y1))
    return boxes


def test_gsps_is_a_presentation_state_in_its_own_series_of_the_study(tmp_path):
    images = _exam()
    _, ds = _written(_content(images), images, tmp_path)
    assert ds.SOPClassUID == GSPS_STORAGE
    assert ds.Modality == "PR"
    assert ds.StudyInstanceUID == images[0].StudyInstanceUID
    assert ds.PatientID == images[0].PatientID
    assert ds.AccessionNumber == images[0].AccessionNumber
    assert ds.SeriesNumber == GSPS_SERIES_NUMBER != SERIES_NUMBER
    assert ds.SeriesInstanceUID not in {im.SeriesInstanceUID for im in images}
    sr_series, sr_instance = report_uids(_content(images), images, ALGORITHM)
    assert ds.SeriesInstanceUID != sr_series
    assert ds.SOPInstanceUID != sr_instance


def test_gsps_references_exactly_the_images_with_findings(tmp_path):
    images = _exam()
    _, ds = _written(_content(images), images, tmp_path)
    referenced = {
        (series.SeriesInstanceUID, image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID)
        for series in ds.ReferencedSeriesSequence
        for image in series.ReferencedImageSequence
    }
    assert referenced == {
        (im.SeriesInstanceUID, im.SOPClassUID, im.SOPInstanceUID) for im in (images[1], images[2])
    }


def test_graphics_read_back_from_the_file_land_exactly_on_each_finding_box(tmp_path):
    images = _exam()
    content = _content(images)
    _, ds = _written(content, images, tmp_path)
    expected: dict[str, list[tuple[float, float, float, float]]] = {}
    for finding in content.findings:
        expected.setdefault(finding.sop_instance_uid, []).append(finding.box)
    assert _boxes_by_image(ds) == expected


def test_each_box_is_labelled_with_its_score_at_its_top_left_corner(tmp_path):
    images = _exam()
    content = _content(images)
    _, ds = _written(content, images, tmp_path)
    labels = sorted(
        (uid, text.UnformattedTextValue, tuple(text.AnchorPoint), text.AnchorPointAnnotationUnits)
        for uid, item in _annotations(ds, FINDINGS_LAYER)
        for text in item.TextObjectSequence
    )
    assert labels == sorted(
        (f.sop_instance_uid, f"AI {f.score}", (f.box[0], f.box[1]), "PIXEL")
        for f in content.findings
    )


def test_category_is_in_the_text_layer_of_every_referenced_image(tmp_path):
    images = _exam()
    _, ds = _written(_content(images), images, tmp_path)
    texts = {
        uid: [t.UnformattedTextValue for t in item.TextObjectSequence]
        for uid, item in _annotations(ds, CATEGORY_LAYER)
    }
    assert texts == {
        images[1].SOPInstanceUID: ["AI category 9 of 10"],
        images[2].SOPInstanceUID: ["AI category 9 of 10"],
    }
    layers = {layer.GraphicLayer: layer.GraphicLayerOrder for layer in ds.GraphicLayerSequence}
    assert layers == {FINDINGS_LAYER: 1, CATEGORY_LAYER: 2}


def test_demonstration_model_says_so_next_to_the_category(tmp_path):
    images = _exam()
    _, ds = _written(_content(images, demonstration=True), images, tmp_path)
    texts = {
        t.UnformattedTextValue
        for _, item in _annotations(ds, CATEGORY_LAYER)
        for t in item.TextObjectSequence
    }
    assert texts == {"AI category 9 of 10 - demonstration model, not for clinical use"}


def test_exam_without_findings_has_no_presentation_state():
    images = _exam()
    content = _content(images, findings=())
    assert build_presentation_state(content, images, ALGORITHM) is None


def test_original_pixels_are_shown_with_the_image_window_and_no_spatial_change(tmp_path):
    images = _exam()
    _, ds = _written(_content(images), images, tmp_path)
    for absent in ("ImageRotation", "ImageHorizontalFlip"):
        assert absent not in ds
    (area,) = ds.DisplayedAreaSelectionSequence
    assert list(area.DisplayedAreaTopLeftHandCorner) == [1, 1]
    assert list(area.DisplayedAreaBottomRightHandCorner) == [images[1].Columns, images[1].Rows]
    assert area.PresentationSizeMode == "SCALE TO FIT"
    (voi,) = ds.SoftcopyVOILUTSequence
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (2000.0, 4000.0)
    assert ds.PresentationLUTShape == "IDENTITY"


def test_an_image_with_a_window_and_a_voi_lut_keeps_its_window(tmp_path):
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.LUTData = list(range(4096))
    lut.LUTExplanation = "NORMAL"
    images = _exam(VOILUTSequence=[lut])
    _, ds = _written(_content(images), images, tmp_path)
    (voi,) = ds.SoftcopyVOILUTSequence
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (2000.0, 4000.0)
    assert "VOILUTSequence" not in voi
    assert all("VOILUTSequence" in image for image in images)  # headers untouched


def test_monochrome1_images_are_shown_inverted_as_their_photometric_interpretation_says(tmp_path):
    images = _exam(PhotometricInterpretation="MONOCHROME1")
    _, ds = _written(_content(images), images, tmp_path)
    assert ds.PresentationLUTShape == "INVERSE"


def _resized_r_cc(images: list[Dataset]) -> ReportContent:
    """The right CC made larger (another detector format), with a finding at its far corner."""
    r_cc = images[2]
    r_cc.PixelData = breast_pixels(rows=120, columns=80).tobytes()
    r_cc.Rows, r_cc.Columns = 120, 80
    return dataclasses.replace(
        _content(images),
        findings=(
            *_content(images).findings[:2],
            ReportFinding(r_cc.SOPInstanceUID, "R", "CC", (50.0, 100.0, 80.0, 120.0), 40),
        ),
    )


def test_views_of_different_sizes_each_get_their_whole_matrix_displayed(tmp_path):
    images = _exam()
    r_cc = images[2]
    _, ds = _written(_resized_r_cc(images), images, tmp_path)
    areas = {
        item.ReferencedImageSequence[0].ReferencedSOPInstanceUID: list(
            item.DisplayedAreaBottomRightHandCorner
        )
        for item in ds.DisplayedAreaSelectionSequence
    }
    assert areas == {images[1].SOPInstanceUID: [64, 96], r_cc.SOPInstanceUID: [80, 120]}
    assert _boxes_by_image(ds)[r_cc.SOPInstanceUID] == [(50.0, 100.0, 80.0, 120.0)]
    assert (r_cc.Rows, r_cc.Columns, images[1].Rows) == (120, 80, 96)  # headers untouched


def test_laterality_is_the_side_of_the_marked_images_or_empty_for_both(tmp_path):
    images = _exam()
    content = _content(images)
    _, both = _written(content, images, tmp_path, "both.dcm")
    _, left = _written(
        dataclasses.replace(content, findings=content.findings[:2]), images, tmp_path, "left.dcm"
    )
    assert (both.Laterality, left.Laterality) == ("", "L")


def test_same_input_gives_the_same_uids_and_a_rescore_a_new_instance(tmp_path):
    images = _exam()
    first_path, first = _written(_content(images), images, tmp_path, "a.dcm")
    second_path, second = _written(_content(images), images, tmp_path, "b.dcm")
    assert (first.SeriesInstanceUID, first.SOPInstanceUID) == (
        second.SeriesInstanceUID,
        second.SOPInstanceUID,
    )
    assert first_path.read_bytes() == second_path.read_bytes()
    _, rescored = _written(_content(images, category=8), images, tmp_path, "c.dcm")
    assert rescored.SOPInstanceUID != first.SOPInstanceUID


def test_finding_outside_its_image_is_refused():
    images = _exam()
    content = _content(
        images,
        findings=(
            ReportFinding(images[1].SOPInstanceUID, "L", "MLO", (10.0, 20.0, 65.0, 40.0), 50),
        ),
    )
    with pytest.raises(ValueError, match="reaches outside its image"):
        build_presentation_state(content, images, ALGORITHM)


def test_finding_on_an_image_outside_the_sources_is_refused():
    images = _exam()
    content = _content(
        images,
        findings=(ReportFinding(generate_uid(), "L", "MLO", (10.0, 20.0, 30.0, 40.0), 50),),
    )
    with pytest.raises(ValueError, match="not among source_images"):
        build_presentation_state(content, images, ALGORITHM)


def test_mixed_photometric_interpretations_are_refused():
    images = _exam()
    images[2].PhotometricInterpretation = "MONOCHROME1"
    with pytest.raises(ValueError, match="MONOCHROME1 and MONOCHROME2 mixed"):
        build_presentation_state(_content(images), images, ALGORITHM)


def test_missing_type2_patient_attributes_do_not_stop_the_presentation_state(tmp_path):
    images = _exam(PatientName=None, AccessionNumber=None, StudyID=None, PatientSex=None)
    _, ds = _written(_content(images), images, tmp_path)
    assert ds.PatientName == "" and ds.AccessionNumber == ""


def test_sources_take_the_presentation_state_for_ours_and_never_for_an_image(tmp_path):
    images = _exam()
    _, ds = _written(_content(images), images, tmp_path)
    assert is_own_report({"Manufacturer": ds.Manufacturer, "SeriesDescription": ""})
    assert screening_exclusion(ds) == "not a mammogram (Modality PR, BodyPartExamined missing)"


@pytest.mark.parametrize(
    "variant",
    ["findings on two images", "demonstration, MONOCHROME1, VOI LUT", "views of two sizes"],
)
def test_dciodvfy_finds_no_error(tmp_path, variant):
    assert shutil.which("dciodvfy"), "dciodvfy missing: make test installs dicom3tools"
    if variant == "findings on two images":
        images = _exam()
        content = _content(images)
    elif variant == "demonstration, MONOCHROME1, VOI LUT":
        lut = Dataset()
        lut.LUTDescriptor = [4096, 0, 16]
        lut.LUTData = list(range(4096))
        images = _exam(
            PhotometricInterpretation="MONOCHROME1",
            PresentationLUTShape="INVERSE",
            VOILUTSequence=[lut],
        )
        content = _content(images, demonstration=True, findings=_content(images).findings[:2])
    else:
        images = _exam()
        content = _resized_r_cc(images)
    path, _ = _written(content, images, tmp_path)
    result = subprocess.run(
        ["dciodvfy", "-new", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert "GrayscaleSoftcopyPresentationState" in output, output
    errors = [line for line in output.splitlines() if re.match(r"^\s*Error", line)]
    assert errors == [], output
