"""Reading mammography DICOM: decoding, grayscale pipeline, laterality/view/orientation
inference with recorded sources, and grouping into exams; writing the triage result as a
DICOM Structured Report.

Reading depends on numpy, pydicom, its codec plugins (pylibjpeg, pyjpegls) and Pillow
(JPEG 2000 decoded at reduced resolution, :mod:`.decode`); the report
(:mod:`.report`, :mod:`.report_content`) also on highdicom. Nothing else of mammotriage
but :mod:`mammotriage.errors` and :mod:`mammotriage.category`.
"""

from mammotriage.dicom.decode import DecodeLimits
from mammotriage.dicom.exams import exam_key, group_exams
from mammotriage.dicom.files import iter_files
from mammotriage.dicom.model import (
    STANDARD_SLOTS,
    STANDARD_VIEWS,
    Exam,
    Image,
    Laterality,
    PresentationIntentType,
    Slot,
    Source,
    ViewPosition,
)
from mammotriage.dicom.reader import read_image

__all__ = [
    "STANDARD_SLOTS",
    "STANDARD_VIEWS",
    "DecodeLimits",
    "Exam",
    "Image",
    "Laterality",
    "PresentationIntentType",
    "Slot",
    "Source",
    "ViewPosition",
    "exam_key",
    "group_exams",
    "iter_files",
    "read_image",
]
