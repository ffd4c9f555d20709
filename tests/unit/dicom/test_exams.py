"""Grouping images into exams without assuming four files, and choosing one per view."""

import json
from pathlib import Path

from mammotriage.dicom import Image, Laterality, PresentationIntentType, ViewPosition, group_exams
from mammotriage.dicom.model import Slot

L, R = Laterality.LEFT, Laterality.RIGHT
CC, MLO, ML = ViewPosition.CC, ViewPosition.MLO, ViewPosition.ML


def _img(lat, view, n=0, **kw):
    base = dict(
        path=Path(f"/x/{lat.value}{view.value}{n}.dcm"), usable=True, laterality=lat, view=view,
        sop_instance_uid=f"1.2.3.{lat.value == 'L' and 1 or 2}.{view.value.__len__()}.{n}",
        study_instance_uid="1.2.840.1", presentation_intent=PresentationIntentType.FOR_PRESENTATION,
    )
    base.update(kw)
    return Image(**base)


def _four(**kw):
    return [_img(L, CC, **kw), _img(L, MLO, **kw), _img(R, CC, **kw), _img(R, MLO, **kw)]


def test_complete_exam_has_four_views_and_is_not_partial():
    (exam,) = group_exams(_four())
    assert sorted(exam.present) == [Slot.L_CC, Slot.L_MLO, Slot.R_CC, Slot.R_MLO]
    assert exam.missing == [] and not exam.partial


def test_missing_view_makes_a_partial_exam():
    (exam,) = group_exams(_four()[:3])
    assert exam.missing == [Slot.R_MLO] and exam.partial


def test_single_image_is_an_exam():
    (exam,) = group_exams([_img(L, CC)])
    assert exam.present == [Slot.L_CC] and len(exam.missing) == 3


def test_grouping_falls_back_to_accession_number_then_patient_and_date():
    by_accession = [_img(L, CC, study_instance_uid=None, accession_number="A1"),
                    _img(R, CC, study_instance_uid=None, accession_number="A1")]
    by_patient = [_img(L, CC, study_instance_uid=None, patient_id="P9", study_date="20260101"),
                  _img(R, CC, study_instance_uid=None, patient_id="P9", study_date="20260101"),
                  _img(L, MLO, study_instance_uid=None, patient_id="P9", study_date="20260202")]
    exams = group_exams(by_accession + by_patient)
    assert [len(e.images) for e in exams] == [2, 2, 1]
    assert [e.exam_id_source for e in exams] == [
        "AccessionNumber",
        "PatientID+StudyDate",
        "PatientID+StudyDate",
    ]


def test_patient_derived_exam_ids_do_not_contain_the_patient_id():
    (exam,) = group_exams([_img(L, CC, study_instance_uid=None, patient_id="1234567890")])
    assert "1234567890" not in exam.exam_id


def test_for_presentation_is_chosen_over_for_processing_and_the_choice_recorded():
    raw = _img(L, CC, 1, presentation_intent=PresentationIntentType.FOR_PROCESSING)
    (exam,) = group_exams([raw, *_four()])
    assert exam.selected[Slot.L_CC].presentation_intent is PresentationIntentType.FOR_PRESENTATION
    assert "For Presentation chosen over For Processing" in exam.choices[Slot.L_CC]
    assert exam.duplicated == [Slot.L_CC]


def test_latest_acquisition_wins_among_equal_duplicates():
    old = _img(R, MLO, 1, acquisition_datetime="20260101090000")
    new = _img(R, MLO, 2, acquisition_datetime="20260101093000")
    (exam,) = group_exams([new, old])
    assert exam.selected[Slot.R_MLO] is new


def test_implant_displaced_view_is_chosen_only_when_it_is_the_only_one():
    displaced = _img(L, CC, 1, implant_displaced=True, acquisition_datetime="2")
    standard = _img(L, CC, 2, acquisition_datetime="1")
    (exam,) = group_exams([displaced, standard])
    assert exam.selected[Slot.L_CC] is standard
    (alone,) = group_exams([displaced])
    assert alone.selected[Slot.L_CC] is displaced


def test_ml_fills_the_mlo_slot_but_a_true_mlo_is_preferred():
    lateral = _img(L, ML, 1)
    (exam,) = group_exams([lateral])
    assert exam.selected[Slot.L_MLO] is lateral and exam.selected[Slot.L_MLO].view is ML
    oblique = _img(L, MLO, 2)
    (both,) = group_exams([lateral, oblique])
    assert both.selected[Slot.L_MLO] is oblique


def test_unusable_images_stay_in_the_exam_but_fill_no_slot():
    spot = _img(L, CC, 1, usable=False, reason="spot compression view")
    (exam,) = group_exams([spot])
    assert exam.images == (spot,) and exam.unusable_images == [spot]
    assert Slot.L_CC in exam.missing


def test_supplementary_views_are_kept_beside_the_standard_slots():
    xccl = _img(R, ViewPosition.XCCL, 1)
    (exam,) = group_exams([*_four(), xccl])
    assert exam.selected[Slot.R_XCCL] is xccl and not exam.partial


def test_a_slot_is_one_breast_in_one_view_and_prints_as_its_label():
    assert Slot.of(L, ML) is Slot.L_MLO and Slot.of(R, CC) is Slot.R_CC
    assert Slot.of(Laterality.UNKNOWN, CC) is None and Slot.of(L, ViewPosition.UNKNOWN) is None
    assert (Slot.R_XCCL.laterality, Slot.R_XCCL.view) == (R, ViewPosition.XCCL)
    assert str(Slot.L_CC) == f"{Slot.L_CC}" == Slot.L_CC.label == "L-CC"
    assert json.dumps({Slot.L_CC: [Slot.R_MLO]}) == '{"L-CC": ["R-MLO"]}'


def test_every_placeable_view_has_a_slot():
    for lat in (L, R):
        for view in ViewPosition:
            if view is not ViewPosition.UNKNOWN:
                assert Slot.of(lat, view) is not None
