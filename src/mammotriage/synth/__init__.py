"""Synthetic screening mammograms with ground truth, written as vendor-variant DICOM.

There is no real data in this repository: tests, the demo and the shipped model are built
on these phantoms. :func:`generate` writes a data set (DICOM files and ``truth.csv``);
:func:`render_view` draws one view's pixels without DICOM, for pictures and tests.
"""

from mammotriage.synth.anatomy import (
    Breast,
    ChestWall,
    Density,
    display_chest_wall,
    sample_breast,
)
from mammotriage.synth.batch import (
    TRUTH_COLUMNS,
    ExamPlan,
    TruthRow,
    generate,
    generate_exam,
    plan_exams,
    read_truth,
    write_truth,
)
from mammotriage.synth.lesions import Box, BreastPosition, Lesion, LesionType
from mammotriage.synth.phantom import RenderedView, render_view
from mammotriage.synth.texture import power_law_field
from mammotriage.synth.vendors import (
    EXTRA_PROFILES,
    PROFILES,
    SYNTHETIC_SITE,
    DetectorFormat,
    LabelStyle,
    VendorProfile,
    VoiStyle,
    burn_in_label,
    profile_by_key,
)

__all__ = [
    "EXTRA_PROFILES",
    "PROFILES",
    "SYNTHETIC_SITE",
    "TRUTH_COLUMNS",
    "Box",
    "Breast",
    "BreastPosition",
    "ChestWall",
    "Density",
    "DetectorFormat",
    "ExamPlan",
    "LabelStyle",
    "Lesion",
    "LesionType",
    "RenderedView",
    "TruthRow",
    "VendorProfile",
    "VoiStyle",
    "burn_in_label",
    "profile_by_key",
    "display_chest_wall",
    "generate",
    "generate_exam",
    "plan_exams",
    "power_law_field",
    "read_truth",
    "render_view",
    "sample_breast",
    "write_truth",
]
