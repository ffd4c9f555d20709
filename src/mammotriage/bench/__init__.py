"""End-to-end scoring benchmark: DICOM files on disk to exam scores, ours against a baseline.

A benchmark, not a test: it measures and reports. Two pipelines score the same exams with
the same weights, alternating run by run, each run in a fresh process so that its time and
its peak memory (VmHWM of that process alone; ``ru_maxrss`` would carry the parent's peak
across fork+exec) are its own:

- *baseline*, what users write today: ``pydicom`` full-resolution decode
  (``ds.pixel_array``), a MONAI ``Compose`` (``EnsureChannelFirst``, ``ScaleIntensity``,
  ``Resize`` to the model input, ``NormalizeIntensity`` with the sidecar's mean and std),
  PyTorch eager inference one image at a time (``torch.no_grad``), exam score = max over
  its images. No breast crop and no reduced-resolution decode: a typical user has neither.
- *ours*: :class:`~mammotriage.infer.engine.ScoringEngine` with its defaults.

The shipped model comes as ONNX only, so the baseline's network is rebuilt from the
sidecar's ``architecture`` and loaded from the ONNX initializers; the TorchScript exporter
keeps the names of unfolded parameters and folds batch norm into the convolution before
it, so those convolutions are matched to the network's in execution order and their batch
norms set to the identity. The rebuilt network must reproduce ONNX Runtime's outputs to
1e-4 or the benchmark stops: a baseline with other weights would measure nothing.

Only the baseline's processes import torch, and only through
:mod:`mammotriage.bench.baseline`; the parent and the engine's runs do not.

- :mod:`~mammotriage.bench.runner`: the parent: runs, alternation, figures
  (:func:`run_benchmark`, :class:`BenchReport`);
- :mod:`~mammotriage.bench.data`: the cached synthetic JPEG 2000 exams (:func:`prepare_data`);
- :mod:`~mammotriage.bench.ours`: the children of our pipeline (engine run, ONNX Runtime
  alone), ``python -m mammotriage.bench.ours ROLE PAYLOAD``;
- :mod:`~mammotriage.bench.baseline`: the baseline's children (torch, MONAI),
  ``python -m mammotriage.bench.baseline ROLE PAYLOAD``;
- :mod:`~mammotriage.bench.common`: what parent and children share.

Importing this package imports neither child module, nor torch.
"""

from mammotriage.bench.common import PARITY_TOLERANCE, BenchmarkError, Say, peak_rss_mb
from mammotriage.bench.data import JPEG2000_SYNTAXES, default_data_dir, prepare_data
from mammotriage.bench.runner import (
    PEAK_RSS_TARGET_MB,
    SPEEDUP_TARGET,
    BenchReport,
    run_benchmark,
)

__all__ = [
    "JPEG2000_SYNTAXES",
    "PARITY_TOLERANCE",
    "PEAK_RSS_TARGET_MB",
    "SPEEDUP_TARGET",
    "BenchReport",
    "BenchmarkError",
    "Say",
    "default_data_dir",
    "peak_rss_mb",
    "prepare_data",
    "run_benchmark",
]
