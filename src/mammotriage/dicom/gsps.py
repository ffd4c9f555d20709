"""The AI findings as a Grayscale Softcopy Presentation State that any PACS viewer applies.

Many viewers show nothing of an SR's content but do apply presentation states (PS3.3 A.33.1,
PS3.4 Annex N): a GSPS names images and says how to show them, with graphics and text drawn
over the pixels. One GSPS per exam with findings:

- it references every image that carries a finding (Presentation State Relationship);
- each finding is a closed 5-point POLYLINE box (PS3.3 C.10.5: ``GraphicType`` POLYLINE whose
  last point repeats the first) in PIXEL units on its own image, with the text ``AI <score>``
  anchored at the box's top-left corner, both in the graphic layer ``AI_FINDINGS``;
- the exam's category ("AI category 8 of 10", and "demonstration model, not for clinical use"
  for the demonstration model) is a text object in DISPLAY units across the top of every
  referenced image, in the layer ``AI_CATEGORY``;
- the image's own pixels are shown: no Spatial Transformation, the whole matrix as the
  Displayed Area, and the images' own Modality LUT and window, or its VOI LUT when it has no
  window (highdicom copies them when the image has them); the Presentation LUT is the
  image's Presentation LUT Shape, or INVERSE for a MONOCHROME1 image, since a presentation
  state overrides the Photometric Interpretation (PS3.3 C.11.6.1).

PIXEL coordinates put (0, 0) at the top-left corner of the top-left pixel and
(Columns, Rows) at the bottom-right corner of the last (PS3.3 C.10.5.1.2): the same
pixel-edge convention as :class:`~mammotriage.dicom.report_content.ReportFinding` boxes and
the SR's SCOORDs, so a box goes in as it is, without a half-pixel shift.

The Manufacturer is ours (:data:`~mammotriage.dicom.report.MANUFACTURER`), so every source
tells the presentation state from the exam's images and never scores it. Its series is one
per study, like the SR's; its SOP Instance UID and tracking UIDs derive from the same facts
as the SR's (study, model, sources, content), so a re-sent GSPS is the same instance and a
rescored exam gives a new one, in the same series, with the report's version as its
Instance Number (and in its UID). A presentation state has no Predecessor Documents Sequence:
the PACS keeps the earlier GSPS beside the new one, and a rescore without findings writes
none.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import DA, DT, TM

from mammotriage.category import HIGHEST
from mammotriage.dicom.report import (
    MANUFACTURER,
    _check_finding,
    _check_sources,
    _study_header,
    rectangle,
)
from mammotriage.dicom.report_content import AlgorithmIdentity, ReportContent
from mammotriage.dicom.report_identity import report_fingerprint

__all__ = [
    "CATEGORY_LAYER",
    "CONTENT_LABEL",
    "FINDINGS_LAYER",
    "GSPS_SERIES_DESCRIPTION",
    "GSPS_SERIES_NUMBER",
    "build_presentation_state",
    "category_text",
    "finding_text",
    "presentation_series_uid",
]

#: Series of the presentation state: its own (Modality PR), after the SR's 9901.
GSPS_SERIES_NUMBER = 9902
GSPS_SERIES_DESCRIPTION = "mammotriage AI findings"
#: Content Label (CS): what a viewer lists as the presentation state's name.
CONTENT_LABEL = "AI_FINDINGS"
FINDINGS_LAYER = "AI_FINDINGS"
CATEGORY_LAYER = "AI_CATEGORY"
#: Where the category line goes, in DISPLAY units (fractions of the displayed area).
_CATEGORY_BOX = (0.02, 0.01, 0.98, 0.06)
_DEMONSTRATION = "demonstration model, not for clinical use"
_IMAGE_ATTRIBUTES = ("Rows", "Columns", "SamplesPerPixel")


def finding_text(score: int) -> str:
    """The label drawn next to a finding's box: ``"AI 61"``."""
    return f"AI {score}"


def category_text(content: ReportContent) -> str:
    """The exam's line in the text layer: ``"AI category 8 of 10"``, and the demonstration
    warning when the model is the demonstration model (ASCII only: the referenced images'
    character set may be the default repertoire)."""
    text = f"AI category {content.category} of {HIGHEST}"
    if content.demonstration:
        text += f" - {_DEMONSTRATION}"
    return text


def _derived_uid(fingerprint: str, purpose: str) -> str:
    return str(generate_uid(entropy_srcs=[f"mammotriage-gsps-{purpose}", fingerprint]))


def presentation_series_uid(study_instance_uid: str) -> str:
    """The Series Instance UID of every mammotriage GSPS of the study: one per study, apart
    from the SR's."""
    return str(generate_uid(entropy_srcs=["mammotriage-gsps-series-of-study", study_instance_uid]))


def _presentation_lut_shape(images: Sequence[Dataset]) -> hd.PresentationLUTShapeValues:
    shapes = set()
    for image in images:
        shape = str(image.get("PresentationLUTShape") or "").strip().upper()
        if shape not in ("IDENTITY", "INVERSE"):
            monochrome1 = str(image.get("PhotometricInterpretation", "")) == "MONOCHROME1"
            shape = "INVERSE" if monochrome1 else "IDENTITY"
        shapes.add(shape)
    if len(shapes) > 1:
        raise ValueError(
            "the images with findings need different Presentation LUT shapes "
            "(MONOCHROME1 and MONOCHROME2 mixed); one presentation state cannot show both"
        )
    return hd.PresentationLUTShapeValues(shapes.pop())


def _check_image(index: int, image: Dataset) -> None:
    # Named by the finding's index, not the image's UID: the worker logs this message.
    missing = [k for k in _IMAGE_ATTRIBUTES if image.get(k) is None]
    if missing:
        raise ValueError(f"the image of findings[{index}] lacks {', '.join(missing)}")
    if int(image.SamplesPerPixel) != 1:
        raise ValueError(
            f"the image of findings[{index}] has SamplesPerPixel {image.SamplesPerPixel}; "
            "a grayscale presentation state needs 1"
        )


def _displayed_areas(images: Sequence[Dataset]) -> list[Dataset]:
    """One Displayed Area item per matrix size: the whole matrix of each image, scaled to fit.

    highdicom writes one item sized from the first image; views of one exam may differ in
    size (detector formats), so each item references the images of its size, as PS3.3
    C.10.4 asks when an item does not apply to all of them.
    """
    by_size: dict[tuple[int, int], list[Dataset]] = {}
    for image in images:
        by_size.setdefault((int(image.Columns), int(image.Rows)), []).append(image)
    items = []
    for (columns, rows), sized in by_size.items():
        item = Dataset()
        if len(by_size) > 1:
            item.ReferencedImageSequence = hd.ReferencedImageSequence(referenced_images=sized)
        item.PixelOriginInterpretation = "FRAME"
        item.DisplayedAreaTopLeftHandCorner = [1, 1]
        item.DisplayedAreaBottomRightHandCorner = [columns, rows]
        item.PresentationSizeMode = "SCALE TO FIT"
        item.PresentationPixelAspectRatio = [1, 1]
        items.append(item)
    return items


def _reference(image: Dataset, like: Dataset) -> Dataset:
    """A shallow copy of ``image`` as highdicom should read it: ``like``'s matrix size and,
    when the image has a window, no VOI LUT Sequence.

    highdicom checks that all referenced images have one size, though the size serves only
    the Displayed Area, which :func:`_displayed_areas` writes from the real headers. It also
    refuses an image that has both a window and a VOI LUT Sequence, as many mammograms do
    (PS3.3 C.11.2 allows both); the presentation state keeps the window, the viewer's usual
    default.
    """
    copy = Dataset()
    copy.update(image)
    # ``update`` shares the data elements: replace them rather than set their values, or
    # the caller's header would change too.
    del copy.Rows, copy.Columns
    copy.Rows, copy.Columns = like.Rows, like.Columns
    if "WindowCenter" in copy and "WindowWidth" in copy and "VOILUTSequence" in copy:
        del copy.VOILUTSequence
    return copy


def build_presentation_state(
    content: ReportContent,
    source_images: Sequence[Dataset],
    algorithm: AlgorithmIdentity,
    *,
    institution_name: str | None = None,
    institutional_department_name: str | None = None,
    content_datetime: datetime.datetime | None = None,
    version: int = 1,
) -> hd.pr.GrayscaleSoftcopyPresentationState | None:
    """Build the exam's GSPS: its findings drawn on their images, its category written.

    Parameters
    ----------
    content:
        The exam result, as for the SR (:func:`~mammotriage.dicom.report.build_measurement_report`).
    source_images:
        Headers (pixel data not needed) of the images the exam was scored from, one study;
        the first supplies the patient and study modules. Only the images with a finding
        are referenced.
    algorithm:
        The model that produced ``content`` (Manufacturer's Model Name, Software Versions).
    institution_name, institutional_department_name:
        Optional General Equipment attributes of the site that runs mammotriage.
    content_datetime:
        Presentation Creation and Instance Creation Date/Time; now when ``None``.
    version:
        The Instance Number: the version of the SR it goes with (1, or more for a rescore).

    Returns
    -------
    highdicom.pr.GrayscaleSoftcopyPresentationState | None
        The presentation state, or ``None`` when the exam has no finding (there is nothing
        to draw, and the category alone is in the SR).

    Raises
    ------
    ValueError
        If ``source_images`` is empty, spans more than one study, lacks a UID or repeats an
        image; if a finding references an image not among them, contradicts its laterality
        or reaches outside its pixel matrix; if an image with a finding lacks Rows, Columns
        or SamplesPerPixel, is not grayscale, or the images mix MONOCHROME1 and MONOCHROME2;
        if ``version`` is not a positive integer.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    by_uid = _check_sources(source_images)
    for index, finding in enumerate(content.findings):
        _check_finding(index, finding, by_uid.get(finding.sop_instance_uid))
    if not content.findings:
        return None

    marked: list[Dataset] = []
    for index, finding in enumerate(content.findings):
        image = by_uid[finding.sop_instance_uid]
        if all(image is not m for m in marked):
            _check_image(index, image)
            marked.append(image)
    lut_shape = _presentation_lut_shape(marked)

    fingerprint = report_fingerprint(content, source_images, algorithm)
    findings_layer = hd.pr.GraphicLayer(
        FINDINGS_LAYER, order=1, description="mammotriage finding boxes and scores"
    )
    category_layer = hd.pr.GraphicLayer(
        CATEGORY_LAYER, order=2, description="mammotriage exam category"
    )
    annotations = []
    for number, finding in enumerate(content.findings, start=1):
        image = by_uid[finding.sop_instance_uid]
        tracking_id = f"finding {number} {finding.laterality} {finding.view}"
        tracking_uid = _derived_uid(fingerprint, f"finding-{number}")
        box = hd.pr.GraphicObject(
            graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
            graphic_data=rectangle(finding.box),
            units=hd.pr.AnnotationUnitsValues.PIXEL,
            tracking_id=tracking_id,
            tracking_uid=tracking_uid,
        )
        label = hd.pr.TextObject(
            text_value=finding_text(finding.score),
            units=hd.pr.AnnotationUnitsValues.PIXEL,
            anchor_point=(float(finding.box[0]), float(finding.box[1])),
            anchor_point_visible=False,
            tracking_id=tracking_id,
            tracking_uid=tracking_uid,
        )
        annotations.append(
            hd.pr.GraphicAnnotation(
                referenced_images=[image],
                graphic_layer=findings_layer,
                graphic_objects=[box],
                text_objects=[label],
            )
        )
    for image in marked:
        annotations.append(
            hd.pr.GraphicAnnotation(
                referenced_images=[image],
                graphic_layer=category_layer,
                text_objects=[
                    hd.pr.TextObject(
                        text_value=category_text(content),
                        units=hd.pr.AnnotationUnitsValues.DISPLAY,
                        bounding_box=_CATEGORY_BOX,
                        text_justification=hd.pr.TextJustificationValues.LEFT,
                    )
                ],
            )
        )

    # highdicom copies the patient and study modules from the first reference (all are of
    # one study), reading Type 2 attributes a modality may have left out: fill them empty.
    references = [_reference(image, marked[0]) for image in marked]
    references[0] = _study_header(references[0])
    when = content_datetime or datetime.datetime.now()
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=references,
        series_instance_uid=presentation_series_uid(str(source_images[0].StudyInstanceUID)),
        series_number=GSPS_SERIES_NUMBER,
        # A first version keeps the UID of the time before versions; a later one hashes its
        # number too, so that each version of the SR has its own GSPS beside it.
        sop_instance_uid=_derived_uid(
            fingerprint, "instance" if version == 1 else f"instance-v{version}"
        ),
        instance_number=version,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        device_serial_number=None,  # type: ignore[arg-type]
        content_label=CONTENT_LABEL,
        content_description=GSPS_SERIES_DESCRIPTION,
        graphic_annotations=annotations,
        graphic_layers=[findings_layer, category_layer],
        institution_name=institution_name,
        institutional_department_name=institutional_department_name,
        presentation_lut_transformation=hd.PresentationLUTTransformation(
            presentation_lut_shape=lut_shape
        ),
        # No Series Date/Time (Type 3): the series holds the GSPS of every version.
        series_description=GSPS_SERIES_DESCRIPTION,
    )
    gsps.DisplayedAreaSelectionSequence = _displayed_areas(marked)
    # Laterality (Type 2C, General Series): the side when every marked image is of one
    # breast; empty (unknown) when the findings are on both, as PR has no value for both.
    sides = {str(image.get("ImageLaterality") or image.get("Laterality") or "") for image in marked}
    gsps.Laterality = sides.pop() if len(sides) == 1 and sides <= {"L", "R"} else ""
    # highdicom stamps creation times with the wall clock; the given time replaces them,
    # so that the same input gives the same bytes.
    gsps.PresentationCreationDate = DA(when.date())
    gsps.PresentationCreationTime = TM(when.time())
    gsps.InstanceCreationDate = DA(when.date())
    gsps.InstanceCreationTime = TM(when.time())
    for equipment in gsps.get("ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = DT(when)
    return gsps
