"""mammotriage: triage of screening mammograms.

The inference side (dicom, preprocess, infer, triage, worklist, worker, api) runs on numpy,
pydicom and ONNX Runtime alone; only :mod:`mammotriage.model` imports torch.
"""

__version__ = "0.1.0"
