"""The AI findings burnt into Secondary Captures: one per image with a finding, each box a white
frame exactly on the finding's pixels of the windowed image (and nothing else changed around
it), read back from the written file; stable UIDs; a file dciodvfy finds no error in."""

from __future__ import annotations

import dataclasses
import datetime
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from infer_builders import view_pixels, write_view
from mammotriage.dicom.capture import (
    SC_SERIES_DESCRIPTION,
    SC_SERIES_NUMBER,
    build_secondary_captures,
    frame_half_width,
)
from mammotriage.dicom.report import (
    AlgorithmIdentity,
    ReportContent,
    ReportFinding,
    write_report,
)
from sr_validators import dciodvfy_errors

SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
ALGORITHM = AlgorithmIdentity(name="mammonet-b0", version="0.1.0", sha256="0123456789abcdef" * 4)
WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5)
ROWS, COLUMNS = 320, 256
#: The window write_view gives every view.
CENTER, WIDTH = 2048, 4096
VIEWS = (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))


@dataclasses.dataclass
class Exam:
    headers: list[Dataset]
    files: dict[str, Path]
    pixels: dict[str, np.ndarray]  # stored values, by SOP Instance UID

    def uid(self, laterality: str, view: str) -> str:
        return next(
            str(h.SOPInstanceUID)
            for h in self.headers
            if (h.ImageLaterality, h.ViewPosition) == (laterality, view)
        )


def _exam(folder: Path, pixels: np.ndarray | None = None, **attrs: object) -> Exam:
    """Four views of one study written to ``folder``, with their headers as the worker reads
    them (no pixel data)."""
    study = generate_uid()
    exam = Exam([], {}, {})
    for laterality, view in VIEWS:
        stored = (
            view_pixels(laterality, view, rows=ROWS, columns=COLUMNS) if pixels is None else pixels
        )
        path = write_view(
            folder / f"{laterality}{view}.dcm",
            laterality,
            view,
            study=study,
            pixels=stored,
            PatientBirthDate="19600101",
            PatientSex="F",
            StudyID="S1",
            StudyTime="101500",
            Manufacturer="ACME",
            **attrs,
        )
        header = pydicom.dcmread(path, stop_before_pixels=True)
        exam.headers.append(header)
        exam.files[str(header.SOPInstanceUID)] = path
        exam.pixels[str(header.SOPInstanceUID)] = stored
    return exam


def _content(exam: Exam, **changes: object) -> ReportContent:
    """Three findings on two images: two on the left MLO, one on the right CC."""
    l_mlo, r_cc = exam.uid("L", "MLO"), exam.uid("R", "CC")
    content = ReportContent(
        exam_score=87.5,
        category=9,
        breasts={"L": 87.5, "R": 12.0},
        findings=(
            ReportFinding(l_mlo, "L", "MLO", (40.0, 100.0, 90.5, 150.0), 88),
            ReportFinding(l_mlo, "L", "MLO", (130.0, 200.0, 180.0, 260.25), 61),
            ReportFinding(r_cc, "R", "CC", (100.0, 120.0, 200.0, 200.0), 7),
        ),
        reading="double reading",
    )
    return dataclasses.replace(content, **changes)  # type: ignore[arg-type]


def _written(
    content: ReportContent, exam: Exam, folder: Path, **kwargs: object
) -> dict[str, tuple[Path, Dataset]]:
    """Each capture written and read back, by the SOP Instance UID of its source image."""
    captures = build_secondary_captures(
        content, exam.headers, exam.files, ALGORITHM, content_datetime=WHEN, **kwargs
    )
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    for capture in captures:
        path = write_report(capture, folder / f"{capture.SOPInstanceUID}.dcm")
        ds = pydicom.dcmread(path)
        (source,) = ds.SourceImageSequence
        found[str(source.ReferencedSOPInstanceUID)] = (path, ds)
    return found


def _plain(stored: np.ndarray, monochrome1: bool = False) -> np.ndarray:
    """The 8-bit image under the LINEAR window of PS3.3 C.11.2.1.2, written out here."""
    shown = np.clip((stored - (CENTER - 0.5)) / (WIDTH - 1) + 0.5, 0.0, 1.0)
    if monochrome1:
        shown = 1.0 - shown
    return np.rint(shown * 255).astype(np.uint8)


def _footprint(box: tuple[float, float, float, float], scale: float = 1.0) -> tuple[int, ...]:
    """First and last column and row of the pixels the pixel-edge box covers."""
    x0, y0, x1, y1 = (v * scale for v in box)
    return math.floor(x0), math.floor(y0), math.ceil(x1) - 1, math.ceil(y1) - 1


def _assert_frame(pixels: np.ndarray, footprint: tuple[int, ...]) -> None:
    """The box's outermost pixels are white all round, its rim black just outside."""
    c0, r0, c1, r1 = footprint
    h = frame_half_width(pixels.shape)
    for edge in (pixels[r0, c0 : c1 + 1], pixels[r1, c0 : c1 + 1]):
        assert (edge == 255).all(), edge
    for edge in (pixels[r0 : r1 + 1, c0], pixels[r0 : r1 + 1, c1]):
        assert (edge == 255).all(), edge
    assert pixels[r0 : r1 + 1, c1 + h + 1].max() == 0  # the rim right of the box
    assert pixels[r1 + h + 1, c0 : c1 + 1].max() == 0  # and below it


def _untouched(footprint: tuple[int, ...], shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Regions a capture must leave as the windowed image: well inside the box, and bands
    right of and below it beyond the rim (the score label sits above the box)."""
    c0, r0, c1, r1 = footprint
    reach = 2 * frame_half_width(shape) + 1
    return [
        (slice(r0 + reach, r1 - reach + 1), slice(c0 + reach, c1 - reach + 1)),
        (slice(r0, r1 + 1), slice(c1 + reach, c1 + reach + 6)),
        (slice(r1 + reach, r1 + reach + 6), slice(c0, c1 + 1)),
    ]


def test_one_capture_per_image_with_findings_in_the_study_of_its_image(tmp_path):
    exam = _exam(tmp_path / "exam")
    written = _written(_content(exam), exam, tmp_path / "sc")
    assert set(written) == {exam.uid("L", "MLO"), exam.uid("R", "CC")}
    series = set()
    for uid, (_, ds) in written.items():
        source = next(h for h in exam.headers if h.SOPInstanceUID == uid)
        assert ds.SOPClassUID == SC_STORAGE
        assert ds.Modality == "OT"
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert (ds.PatientID, ds.PatientName, ds.AccessionNumber) == (
            source.PatientID,
            source.PatientName,
            source.AccessionNumber,
        )
        assert ds.SeriesInstanceUID not in {h.SeriesInstanceUID for h in exam.headers}
        assert ds.SeriesNumber == SC_SERIES_NUMBER
        assert ds.SeriesDescription == SC_SERIES_DESCRIPTION
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert (ds.BurnedInAnnotation, ds.ConversionType) == ("YES", "WSD")
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.BitsAllocated, ds.Rows, ds.Columns) == (8, ROWS, COLUMNS)
        assert list(ds.PatientOrientation) == list(source.PatientOrientation)
        (reference,) = ds.SourceImageSequence
        assert reference.ReferencedSOPClassUID == source.SOPClassUID
        assert reference.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
        assert ds.Manufacturer == "mammotriage"
        assert ds.ManufacturerModelName == ALGORITHM.name
        series.add(ds.SeriesInstanceUID)
    assert len(series) == 1


@pytest.mark.parametrize("variant", ["MONOCHROME2", "MONOCHROME1", "window and VOI LUT"])
def test_boxes_are_burnt_exactly_on_the_findings_of_the_windowed_image(tmp_path, variant):
    attrs: dict[str, object] = {}
    if variant == "MONOCHROME1":
        attrs["PhotometricInterpretation"] = "MONOCHROME1"
    elif variant == "window and VOI LUT":
        lut = Dataset()  # a LUT that would show the image nearly black: the window wins
        lut.LUTDescriptor = [4096, 0, 16]
        lut.add_new("LUTData", "OW", np.arange(4096, dtype="<u2").tobytes())
        attrs["VOILUTSequence"] = [lut]
    exam = _exam(tmp_path / "exam", **attrs)
    content = _content(exam)
    written = _written(content, exam, tmp_path / "sc")
    for finding in content.findings:
        _, ds = written[finding.sop_instance_uid]
        pixels = ds.pixel_array
        plain = _plain(exam.pixels[finding.sop_instance_uid], variant == "MONOCHROME1")
        footprint = _footprint(finding.box)
        _assert_frame(pixels, footprint)
        for region in _untouched(footprint, pixels.shape):
            np.testing.assert_array_equal(pixels[region], plain[region])
        # The score is written just above the box: white letters outlined in black.
        c0, r0, _, _ = footprint
        label = pixels[r0 - 20 : r0 - 2, c0 : c0 + 30]
        assert label.max() > 230 and label.min() < 20


def test_larger_images_are_scaled_down_with_their_boxes(tmp_path):
    tissue = np.full((ROWS, COLUMNS), 2866, dtype=np.uint16)
    exam = _exam(tmp_path / "exam", pixels=tissue)
    content = _content(exam)
    written = _written(content, exam, tmp_path / "sc", max_side=ROWS // 2)
    shown = _plain(tissue)[0, 0]
    for finding in content.findings:
        _, ds = written[finding.sop_instance_uid]
        pixels = ds.pixel_array
        assert pixels.shape == (ROWS // 2, COLUMNS // 2)
        footprint = _footprint(finding.box, scale=0.5)
        _assert_frame(pixels, footprint)
        for region in _untouched(footprint, pixels.shape):
            assert (pixels[region] == shown).all()


def test_a_box_over_the_whole_image_is_framed_along_its_borders(tmp_path):
    exam = _exam(tmp_path / "exam")
    uid = exam.uid("L", "CC")
    whole = ReportFinding(uid, "L", "CC", (0.0, 0.0, float(COLUMNS), float(ROWS)), 50)
    written = _written(_content(exam, findings=(whole,)), exam, tmp_path / "sc")
    pixels = written[uid][1].pixel_array
    for border in (pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]):
        assert (border == 255).all()


def test_demonstration_notice_is_burnt_across_the_top_and_named_in_the_series(tmp_path):
    exam = _exam(tmp_path / "exam")
    clinical = _written(_content(exam), exam, tmp_path / "clinical")
    demo = _written(_content(exam, demonstration=True), exam, tmp_path / "demo")
    for uid, (_, ds) in demo.items():
        assert "demonstration model, not for clinical use" in ds.SeriesDescription
        assert "demonstration model, not for clinical use" in ds.DerivationDescription
        assert ds.SeriesInstanceUID != clinical[uid][1].SeriesInstanceUID
        differs = np.nonzero((ds.pixel_array != clinical[uid][1].pixel_array).any(axis=1))[0]
        # A second line of text under the first, and nothing changed below it.
        assert differs.size and differs.min() > 5 and differs.max() < 40, differs


def test_same_content_gives_the_same_captures_and_a_change_new_instances(tmp_path):
    exam = _exam(tmp_path / "exam")
    content = _content(exam)
    first = _written(content, exam, tmp_path / "a")
    again = _written(content, exam, tmp_path / "b")
    for uid, (path, _) in first.items():
        assert path.name == again[uid][0].name
        assert path.read_bytes() == again[uid][0].read_bytes()
    recategorised = _written(_content(exam, category=8), exam, tmp_path / "c")
    for uid, (_, ds) in first.items():
        assert recategorised[uid][1].SOPInstanceUID != ds.SOPInstanceUID
        assert recategorised[uid][1].SeriesInstanceUID == ds.SeriesInstanceUID
    # Only the right CC's finding changes: the left MLO capture stays the same instance.
    r_cc = dataclasses.replace(content.findings[2], score=8)
    rescored = _written(
        _content(exam, findings=(*content.findings[:2], r_cc)), exam, tmp_path / "d"
    )
    l_mlo, r_cc_uid = exam.uid("L", "MLO"), exam.uid("R", "CC")
    assert rescored[l_mlo][1].SOPInstanceUID == first[l_mlo][1].SOPInstanceUID
    assert rescored[r_cc_uid][1].SOPInstanceUID != first[r_cc_uid][1].SOPInstanceUID


def test_exam_without_findings_has_no_capture(tmp_path):
    exam = _exam(tmp_path / "exam")
    content = _content(exam, findings=())
    assert build_secondary_captures(content, exam.headers, {}, ALGORITHM) == []


def test_missing_or_wrong_pixel_file_is_refused(tmp_path):
    exam = _exam(tmp_path / "exam")
    content = _content(exam)
    files = dict(exam.files)
    del files[exam.uid("R", "CC")]
    with pytest.raises(
        ValueError, match=r"pixel_files lacks the file of the image of findings\[2\]"
    ):
        build_secondary_captures(content, exam.headers, files, ALGORITHM)
    files[exam.uid("R", "CC")] = exam.files[exam.uid("R", "MLO")]
    with pytest.raises(ValueError, match=r"findings\[2\] is another image"):
        build_secondary_captures(content, exam.headers, files, ALGORITHM)


@pytest.mark.parametrize(
    "variant", ["findings on two images", "demonstration, MONOCHROME1", "scaled, no Type 2"]
)
def test_dciodvfy_finds_no_error(tmp_path, variant):
    kwargs: dict[str, object] = {}
    if variant == "findings on two images":
        exam = _exam(tmp_path / "exam")
        content = _content(exam)
    elif variant == "demonstration, MONOCHROME1":
        exam = _exam(
            tmp_path / "exam",
            PhotometricInterpretation="MONOCHROME1",
            PatientOrientation=["A", "FR"],
        )
        content = _content(exam, demonstration=True)
    else:
        exam = _exam(tmp_path / "exam", PatientName=None, AccessionNumber=None)
        for header in exam.headers:
            del header.PatientSex, header.StudyID
        content = _content(exam)
        kwargs["max_side"] = 128
    written = _written(content, exam, tmp_path / "sc", **kwargs)
    assert len(written) == 2
    for path, _ in written.values():
        assert dciodvfy_errors(path) == []
