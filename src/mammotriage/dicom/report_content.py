"""What a mammotriage SR reports: plain frozen records, checked when they are made.

The ``dicom`` package may not import ``infer`` or ``triage``, so the worker converts its
``ExamScore`` and triage decision into these records before :func:`build_measurement_report`
(:mod:`mammotriage.dicom.report`) turns them into DICOM. Every constructor checks its values
and names the argument, the bad value and the allowed ones (the highdicom habit), so that a
report that reaches a PACS never carries a score outside its range.

The codes used by the report live here too: standard ones (SNOMED CT, DCM, UCUM) wherever
PS3.16 has a concept, and a small private scheme (``99MMTRIAGE``, declared in the Coding Scheme
Identification Sequence as PS3.3 C.12.1.1.9 asks) for the two concepts it has not: the
triage category and the reading decision.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

from mammotriage.category import HIGHEST, LOWEST
from mammotriage.dicom.model import Laterality

LATERALITIES = ("L", "R")
#: The breasts a report scores, by laterality.
BREAST_SIDES = (Laterality.LEFT, Laterality.RIGHT)
CATEGORY_RANGE = (LOWEST, HIGHEST)
FINDING_SCORE_RANGE = (1, 100)
SCORE_RANGE = (0.0, 100.0)

#: Private coding scheme for the concepts PS3.16 has no code for (PS3.16 Section 8.2:
#: a designator starting with "99" is private).
PRIVATE_SCHEME = "99MMTRIAGE"
PRIVATE_SCHEME_NAME = "mammotriage triage codes"

#: SCT 71651007 "Mammography" (CID 6058/10005), the procedure every report is about: the
#: SR's Performed Procedure Code Sequence (PS3.3 C.17.2).
PROCEDURE_MAMMOGRAPHY = CodedConcept(
    codes.SCT.Mammography.value, codes.SCT.Mammography.scheme_designator, "Mammography"
)
#: SCT 363679005 "Imaging procedure", TID 1500's "Procedure reported". TID 1500 row 4 takes
#: its value from CID 100, which has no mammography code in any edition; "Imaging procedure"
#: is the one code of CID 100 that fits a mammogram and is in every edition since 2019 (the
#: "XR unspecified body region" of 2023c is unknown to validators built on older ones).
PROCEDURE_REPORTED = CodedConcept(
    codes.SCT.ImagingProcedure.value,
    codes.SCT.ImagingProcedure.scheme_designator,
    "Imaging procedure",
)
#: DCM 121112 "Source of Measurement" (CID 7551): the SCOORD that places a finding's score on
#: its image in a TID 1501 Measurement Group (row 10).
SOURCE_OF_MEASUREMENT = CodedConcept(
    codes.DCM.SourceOfMeasurement.value,
    codes.DCM.SourceOfMeasurement.scheme_designator,
    "Source of Measurement",
)
#: IHE's own coding scheme, private in DICOM terms (PS3.16 Section 8.2).
IHE_SCHEME = "99IHE"
IHE_SCHEME_NAME = "IHE Radiology Technical Framework codes"
IHE_ORGANIZATION = "IHE International"
#: Purpose of Reference of the algorithm's Contributing Equipment item (IHE RAD AI Results).
PROCESSING_ALGORITHM = CodedConcept("Newcode1", IHE_SCHEME, "Processing Algorithm")
#: SCT 246262008 "Score": the name of every AI score measurement (exam, breast, finding).
SCORE = CodedConcept(codes.SCT.Score.value, codes.SCT.Score.scheme_designator, "Score")
#: UCUM annotation "{score}": a dimensionless score on the 0-100 scale.
UNIT_SCORE = CodedConcept("{score}", "UCUM", "score")
#: UCUM "1" "no units" (CID 7181) for the ordinal triage category.
UNIT_NONE = CodedConcept(
    codes.UCUM.NoUnits.value, codes.UCUM.NoUnits.scheme_designator, codes.UCUM.NoUnits.meaning
)
TRIAGE_CATEGORY = CodedConcept("CATEGORY", PRIVATE_SCHEME, "Triage category")
TRIAGE_READING = CodedConcept("READING", PRIVATE_SCHEME, "Triage reading")
INTENDED_USE = CodedConcept("INTENDED-USE", PRIVATE_SCHEME, "Intended use")
DEMONSTRATION_ONLY = CodedConcept(
    "DEMONSTRATION", PRIVATE_SCHEME, "demonstration model, not for clinical use"
)
BREAST = CodedConcept(codes.SCT.Breast.value, codes.SCT.Breast.scheme_designator, "Breast")
#: SCT 80248007 "Left breast" / 73056007 "Right breast" (CID 6022).
BREAST_BY_LATERALITY = {
    "L": CodedConcept(
        codes.SCT.LeftBreast.value, codes.SCT.LeftBreast.scheme_designator, "Left breast"
    ),
    "R": CodedConcept(
        codes.SCT.RightBreast.value, codes.SCT.RightBreast.scheme_designator, "Right breast"
    ),
}

# Code Value is SH (16 characters) and Code Meaning LO (64): PS3.5 Table 6.2-1.
_CODE_VALUE_MAX = 16
_CODE_MEANING_MAX = 64
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_score(argument: str, value: float) -> float:
    low, high = SCORE_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{argument} must be a number, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{argument} must lie in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def reading_code(reading: str) -> CodedConcept:
    """The coded value for a reading decision ("double reading" → ``DOUBLE-READING``).

    Raises
    ------
    ValueError
        If the text is empty, or too long for a Code Value (16) or a Code Meaning (64).
    """
    text = reading.strip()
    value = re.sub(r"[^A-Z0-9]+", "-", text.upper()).strip("-")
    if not value or len(value) > _CODE_VALUE_MAX or len(text) > _CODE_MEANING_MAX:
        raise ValueError(
            f"reading must be a short decision text (a code value of at most "
            f"{_CODE_VALUE_MAX} letters/digits), got {reading!r}"
        )
    return CodedConcept(value, PRIVATE_SCHEME, text)


@dataclass(frozen=True)
class AlgorithmIdentity:
    """The model that scored the exam, as TID 4019 Algorithm Identification records it.

    Parameters
    ----------
    name:
        Model name (Algorithm Name, DCM 111001).
    version:
        mammotriage version (Algorithm Version, DCM 111003).
    sha256:
        SHA-256 of the ONNX model file, 64 lower-case hex digits; it goes into the
        Algorithm Parameters and into the report's UIDs, so a new model gives a new report.
    """

    name: str
    version: str
    sha256: str

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > _CODE_MEANING_MAX:
            raise ValueError(f"name must be 1-{_CODE_MEANING_MAX} characters, got {self.name!r}")
        if not self.version.strip():
            raise ValueError(f"version must not be empty, got {self.version!r}")
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")


@dataclass(frozen=True)
class ReportFinding:
    """One suspicious region on one image.

    Parameters
    ----------
    sop_instance_uid:
        SOP Instance UID of the image the region lies on; must be one of the report's sources.
    laterality:
        ``"L"`` or ``"R"``.
    view:
        The view label (``"CC"``, ``"MLO"``, ...), used in the tracking identifier.
    box:
        ``(x0, y0, x1, y1)`` in pixel-edge coordinates of the original image: x along
        columns, y along rows, (0, 0) the top-left corner of the top-left pixel. These are
        exactly the SCOORD image coordinates of PS3.3 C.18.6.1.1, so no half-pixel shift.
    score:
        Finding score, an integer 1-100.
    """

    sop_instance_uid: str
    laterality: str
    view: str
    box: tuple[float, float, float, float]
    score: int

    def __post_init__(self) -> None:
        if not self.sop_instance_uid:
            raise ValueError("sop_instance_uid must not be empty")
        if self.laterality not in LATERALITIES:
            raise ValueError(f"laterality must be one of {LATERALITIES}, got {self.laterality!r}")
        if not self.view.strip():
            raise ValueError(f"view must not be empty, got {self.view!r}")
        if len(self.box) != 4 or not all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in self.box
        ):
            raise ValueError(f"box must be four finite numbers (x0, y0, x1, y1), got {self.box!r}")
        x0, y0, x1, y1 = self.box
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise ValueError(f"box must satisfy 0 <= x0 < x1 and 0 <= y0 < y1, got {self.box!r}")
        low, high = FINDING_SCORE_RANGE
        if isinstance(self.score, bool) or not isinstance(self.score, int):
            raise ValueError(f"score must be an integer, got {self.score!r}")
        if not low <= self.score <= high:
            raise ValueError(f"score must lie in [{low}, {high}], got {self.score!r}")


@dataclass(frozen=True)
class ReportContent:
    """Everything the SR states about one exam.

    Parameters
    ----------
    exam_score:
        Exam AI score, 0-100.
    category:
        Calibrated triage category, 1-10.
    breasts:
        Breast scores by :class:`Laterality` (left, right); ``None`` (or a missing key) for
        a breast without a usable image, which the report then leaves out.
    findings:
        Regions to mark, in the order they should be numbered.
    reading:
        The triage decision ("single reading", "double reading"), or ``None``.
    partial:
        Whether the exam lacked a standard view; the SR's Completion Flag says PARTIAL.
    demonstration:
        Whether the model is a demonstration model (trained on synthetic data); the SR then
        says "demonstration model, not for clinical use" in the exam's evaluations.
    """

    exam_score: float
    category: int
    breasts: Mapping[Laterality, float | None] = field(default_factory=dict)
    findings: tuple[ReportFinding, ...] = ()
    reading: str | None = None
    partial: bool = False
    demonstration: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "exam_score", _check_score("exam_score", self.exam_score))
        low, high = CATEGORY_RANGE
        if isinstance(self.category, bool) or not isinstance(self.category, int):
            raise ValueError(f"category must be an integer, got {self.category!r}")
        if not low <= self.category <= high:
            raise ValueError(f"category must lie in [{low}, {high}], got {self.category!r}")
        unknown = sorted(str(getattr(k, "value", k)) for k in self.breasts if k not in BREAST_SIDES)
        if unknown:
            raise ValueError(f"breasts keys must be among {LATERALITIES}, got {unknown!r}")
        sides = sorted(((Laterality(k), v) for k, v in self.breasts.items()), key=lambda kv: kv[0])
        breasts = {
            side: None if score is None else _check_score(f"breasts[{side.value!r}]", score)
            for side, score in sides
        }
        # A read-only copy keeps the record frozen in fact, not only in name.
        object.__setattr__(self, "breasts", MappingProxyType(breasts))
        object.__setattr__(self, "findings", tuple(self.findings))
        if not all(isinstance(f, ReportFinding) for f in self.findings):
            raise ValueError("findings must be ReportFinding records")
        if self.reading is not None:
            reading_code(self.reading)
