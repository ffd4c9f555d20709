"""Laterality, view, orientation and screening-use decisions, each from the right source."""

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicom_builders import FOR_PROCESSING, SECONDARY_CAPTURE, breast_pixels, mg_dataset, write
from mammotriage.dicom import Laterality, PresentationIntentType, Source, ViewPosition, read_image


def _code(value, scheme="SCT", meaning=""):
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _read(tmp_path, name="IMG0001.dcm", pixels=None, **attrs):
    return read_image(write(mg_dataset(pixels, **attrs), tmp_path / name))


def test_image_laterality_wins_over_series_laterality(tmp_path):
    image = _read(tmp_path, ImageLaterality="R", Laterality="L")
    assert (image.laterality, image.laterality_source) == (
        Laterality.RIGHT,
        Source.IMAGE_LATERALITY,
    )


def test_series_laterality_is_used_when_image_laterality_is_absent(tmp_path):
    image = _read(tmp_path, ImageLaterality=None, Laterality="R")
    assert (image.laterality, image.laterality_source) == (Laterality.RIGHT, Source.LATERALITY)


def test_frame_laterality_in_functional_groups_is_used(tmp_path):
    anatomy = Dataset()
    anatomy.FrameLaterality = "R"
    group = Dataset()
    group.FrameAnatomySequence = [anatomy]
    image = _read(tmp_path, ImageLaterality=None, SharedFunctionalGroupsSequence=[group])
    assert (image.laterality, image.laterality_source) == (
        Laterality.RIGHT,
        Source.FUNCTIONAL_GROUPS,
    )


@pytest.mark.parametrize(
    "field,text,source,lat,view",
    [
        ("SeriesDescription", "R MLO", Source.SERIES_DESCRIPTION, "R", "MLO"),
        ("SeriesDescription", "LCC Tomo-less", Source.SERIES_DESCRIPTION, "L", "CC"),
        ("ProtocolName", "Screening RIGHT CC", Source.PROTOCOL_NAME, "R", "CC"),
        ("PatientID", "Calc-Training_P_00005_LEFT_MLO", Source.PATIENT_ID, "L", "MLO"),
    ],
)
def test_laterality_and_view_from_text_when_no_tag_has_them(
    tmp_path, field, text, source, lat, view
):
    image = _read(
        tmp_path, ImageLaterality=None, ViewPosition=None, PatientOrientation=None, **{field: text}
    )
    assert (image.laterality.value, image.laterality_source) == (lat, source)
    assert (image.view.value, image.view_source) == (view, source)


def test_laterality_and_view_from_the_file_name_as_last_text_source(tmp_path):
    image = _read(tmp_path, name="P_00001_RIGHT_MLO.dcm", ImageLaterality=None, ViewPosition=None,
                  PatientOrientation=None)
    assert (image.laterality, image.laterality_source) == (Laterality.RIGHT, Source.FILE_NAME)
    assert (image.view, image.view_source) == (ViewPosition.MLO, Source.FILE_NAME)


@pytest.mark.parametrize(
    "chest_wall,expected", [("left", Laterality.LEFT), ("right", Laterality.RIGHT)]
)
def test_laterality_from_pixels_follows_the_display_convention(tmp_path, chest_wall, expected):
    image = _read(tmp_path, pixels=breast_pixels(chest_wall=chest_wall), ImageLaterality=None,
                  PatientOrientation=None)
    assert (image.laterality, image.laterality_source) == (expected, Source.PIXELS)


@pytest.mark.parametrize(
    "code,scheme,view",
    [("399162004", "SCT", "CC"), ("399368009", "SCT", "MLO"), ("R-10242", "SRT", "CC"),
     ("R-10226", "SRT", "MLO"), ("399260004", "SCT", "ML"), ("R-1024A", "SRT", "XCCL"),
     ("399196006", "SCT", "FB")],
)
def test_view_from_view_code_sequence_in_snomed_and_legacy_srt(tmp_path, code, scheme, view):
    image = _read(tmp_path, ViewPosition=None, ViewCodeSequence=[_code(code, scheme)])
    assert (image.view.value, image.view_source) == (view, Source.VIEW_CODE_SEQUENCE)


def test_view_from_acquisition_device_processing_description(tmp_path):
    image = _read(tmp_path, ViewPosition=None, PatientOrientation=None,
                  AcquisitionDeviceProcessingDescription="L MLO, Standard")
    assert (image.view, image.view_source) == (
        ViewPosition.MLO,
        Source.DEVICE_PROCESSING_DESCRIPTION,
    )


def test_view_from_patient_orientation_column_direction(tmp_path):
    image = _read(tmp_path, ViewPosition=None, PatientOrientation=["A", "F"])
    assert (image.view, image.view_source) == (ViewPosition.MLO, Source.PATIENT_ORIENTATION)


def test_ml_is_kept_as_ml(tmp_path):
    assert _read(tmp_path, ViewPosition="ML").view is ViewPosition.ML


@pytest.mark.parametrize("orientation,flip_h", [(["A", "R"], False), (["P", "L"], True)])
def test_orientation_from_patient_orientation(tmp_path, orientation, flip_h):
    image = _read(tmp_path, PatientOrientation=orientation)
    assert image.flip_horizontal is flip_h
    assert image.orientation_source is Source.PATIENT_ORIENTATION


def test_cc_stored_with_lateral_side_at_the_bottom_is_flipped_vertically(tmp_path):
    image = _read(tmp_path, ImageLaterality="L", ViewPosition="CC", PatientOrientation=["A", "L"])
    assert image.flip_vertical


@pytest.mark.parametrize("chest_wall,flip", [("left", False), ("right", True)])
def test_orientation_from_pixels_without_patient_orientation(tmp_path, chest_wall, flip):
    image = _read(tmp_path, pixels=breast_pixels(chest_wall=chest_wall), PatientOrientation=None)
    assert (image.flip_horizontal, image.orientation_source) == (flip, Source.PIXELS)


def test_monochrome1_file_reads_with_dense_tissue_bright(tmp_path):
    pixels = breast_pixels()
    inverted = (4095 - pixels).astype(np.uint16)
    mono2 = _read(tmp_path, "a.dcm", pixels=pixels, WindowCenter=2048, WindowWidth=4096)
    mono1 = _read(tmp_path, "b.dcm", pixels=inverted, PhotometricInterpretation="MONOCHROME1",
                  WindowCenter=2048, WindowWidth=4096)
    np.testing.assert_allclose(mono1.pixels, mono2.pixels, atol=1e-3)


def test_for_processing_images_are_read_and_marked(tmp_path):
    image = _read(tmp_path, SOPClassUID=FOR_PROCESSING, PresentationIntentType="FOR PROCESSING")
    assert image.usable
    assert image.presentation_intent is PresentationIntentType.FOR_PROCESSING


def test_secondary_capture_copy_of_a_mammogram_is_read_and_marked(tmp_path):
    image = _read(tmp_path, SOPClassUID=SECONDARY_CAPTURE, Modality="OT", BodyPartExamined="BREAST")
    assert image.usable and image.secondary_capture


def test_non_mammography_image_is_unusable_with_reason(tmp_path):
    image = _read(tmp_path, Modality="CT", BodyPartExamined="CHEST")
    assert not image.usable and "not a mammogram" in image.reason


@pytest.mark.parametrize(
    "attrs,phrase",
    [
        ({"ViewCodeSequence": "spot"}, "spot compression"),
        ({"ViewCodeSequence": "mag"}, "magnification"),
        ({"EstimatedRadiographicMagnificationFactor": 1.8}, "magnification"),
        ({"SeriesDescription": "L CC SPOT"}, "spot compression"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.13.1.3"}, "tomosynthesis"),
        ({"NumberOfFrames": 60}, "tomosynthesis"),
        ({"SeriesDescription": "R MLO CAD"}, "CAD-marked"),
        ({"ImageType": ["DERIVED", "SECONDARY", "CAD"]}, "CAD-marked"),
    ],
)
def test_non_screening_views_are_unusable_with_reason(tmp_path, attrs, phrase):
    if attrs.get("ViewCodeSequence") in ("spot", "mag"):
        view = _code("399162004")
        spot = attrs["ViewCodeSequence"] == "spot"
        view.ViewModifierCodeSequence = [
            _code("399055006" if spot else "R-102D6", "SCT" if spot else "SRT")
        ]
        attrs = {"ViewCodeSequence": [view]}
    image = _read(tmp_path, **attrs)
    assert not image.usable
    assert phrase.lower() in image.reason.lower()


def test_synthetic_2d_image_from_tomosynthesis_is_usable(tmp_path):
    image = _read(tmp_path, ImageType=["DERIVED", "PRIMARY", "TOMOSYNTHESIS", "GENERATED_2D"],
                  SeriesDescription="L CC C-View")
    assert image.usable


@pytest.mark.parametrize(
    "attrs",
    [
        {"ViewPosition": "CCID"},
        {"SeriesDescription": "R CC implant displaced"},
        {"ViewCodeSequence": "id"},
    ],
)
def test_implant_displaced_views_are_usable_and_marked(tmp_path, attrs):
    if attrs.get("ViewCodeSequence") == "id":
        view = _code("399162004")
        view.ViewModifierCodeSequence = [_code("399209000")]
        attrs = {"ViewCodeSequence": [view], "ViewPosition": None}
    image = _read(tmp_path, **attrs)
    assert image.usable and image.implant_displaced
    assert image.view is ViewPosition.CC


def test_metadata_only_read_decodes_no_pixels_when_tags_settle_everything(tmp_path):
    path = write(mg_dataset(), tmp_path / "a.dcm")
    image = read_image(path, load_pixels=False)
    assert image.pixels is None and image.usable
    assert image.orientation_source is Source.PATIENT_ORIENTATION
