"""Reading mammography DICOM: decoding, grayscale pipeline, laterality/view/orientation
inference with recorded sources, and grouping into exams.

Depends on numpy, pydicom and the codec plugins only.
"""

from mammotriage.dicom.decode import DecodeLimits
from mammotriage.dicom.exams import exam_key, group_exams
from mammotriage.dicom.files import iter_files
from mammotriage.dicom.model import (
    STANDARD_VIEWS,
    Exam,
    Image,
    Laterality,
    PresentationIntentType,
    Source,
    ViewPosition,
)
from mammotriage.dicom.reader import read_image

__all__ = [
    "STANDARD_VIEWS",
    "DecodeLimits",
    "Exam",
    "Image",
    "Laterality",
    "PresentationIntentType",
    "Source",
    "ViewPosition",
    "exam_key",
    "group_exams",
    "iter_files",
    "read_image",
]
