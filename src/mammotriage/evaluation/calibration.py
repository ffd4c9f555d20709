"""Site-calibrated sidecars from a backfill: the site's own deciles, and a device's where
its exams spread differently over the site's categories.

A category means "among the x-th tenth of *our* screening population". The backfill scored
the site's archive, which is exactly the reference population a site calibration needs
(:mod:`mammotriage.infer.calibrate` explains why). So ``evaluate --sidecar-out DIR`` writes:

- ``site.json``: the model's sidecar with the calibration replaced by the deciles of every
  scored exam's score;
- ``device-<slug>.json`` for each device whose exams, placed in the site's new categories,
  spread differently from the site as a whole (population stability index above
  :data:`DEVICE_PSI_LIMIT`) and that has at least
  :data:`~mammotriage.infer.calibrate.MIN_EXAMS` scored exams: the deciles of that device's
  own scores.

Only ``calibration`` changes; the sha256 and everything else still describe the same
``.onnx``. To use one, copy the model beside it under the same name (``site.onnx`` next to
``site.json``). The packaged demonstration model's own sidecar is never written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mammotriage import defaults
from mammotriage.category import CATEGORIES
from mammotriage.errors import ConfigError
from mammotriage.evaluation.metrics import ExamArrays
from mammotriage.infer.calibrate import MIN_EXAMS, calibration_from_scores
from mammotriage.sidecar import Sidecar, load_sidecar, write_sidecar
from mammotriage.stability import psi

#: A device whose category distribution differs from the site's by more than this PSI gets
#: its own sidecar (0.2 is the usual "shift worth acting on").
DEVICE_PSI_LIMIT = 0.2
SITE_FILE = "site.json"


@dataclass(frozen=True)
class WrittenSidecar:
    """One sidecar ``evaluate`` wrote, and why."""

    path: Path
    #: "site", or the device's name.
    scope: str
    exams: int
    thresholds: tuple[float, ...]
    why: str
    #: The device's PSI against the site's distribution (None for the site file).
    psi: float | None = None


@dataclass(frozen=True)
class DeviceCheck:
    """A device considered for its own sidecar, written or not, and why."""

    device: str
    exams: int
    psi: float | None
    written: bool
    why: str


def slug(name: str) -> str:
    """A file-name-safe form of a device name: lower case, runs of other characters as
    one ``-`` (``"ACME / Senograph 2000D / MAMMO-1"`` -> ``"acme-senograph-2000d-mammo-1"``)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def categories_of(scores: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """Categories 1-10 of exam scores under ``thresholds``: upper bounds inclusive, as
    :func:`mammotriage.infer.scores.category_of` places one score (``bisect_left``)."""
    return 1 + np.searchsorted(np.asarray(thresholds), scores, side="left")


def _shares(categories: np.ndarray) -> np.ndarray:
    counts = np.bincount(categories, minlength=CATEGORIES.stop)[CATEGORIES.start :]
    return counts / max(1, categories.size)


def write_site_sidecars(
    arrays: ExamArrays,
    model: Path,
    model_sha256: str,
    out: Path,
    *,
    source: str,
    min_exams: int = MIN_EXAMS,
) -> tuple[list[WrittenSidecar], list[DeviceCheck]]:
    """Write ``site.json`` and the devices' sidecars into ``out`` (see the module docstring).

    Parameters
    ----------
    model
        The ``.onnx`` whose sidecar is the starting point; it must be the model that made
        the scores (``model_sha256``).
    source
        Words for where the scores came from, recorded in each sidecar's ``reference``.

    Raises
    ------
    ConfigError
        If the model's sidecar is missing or does not describe the model that made the
        scores, ``out`` is the packaged model's folder, or fewer than ``min_exams`` exams
        were scored.
    """
    sidecar = load_sidecar(Path(model))
    if sidecar.sha256 != model_sha256:
        raise ConfigError(
            f"the scores were made by the model with sha256 {model_sha256[:12]}..., but "
            f"{model} is {sidecar.sha256[:12]}...: give --model the .onnx that made them"
        )
    out = Path(out)
    if out.resolve() == Path(defaults.__file__).resolve().parent:
        raise ConfigError(
            f"{out} is the packaged demonstration model's folder, whose sidecar evaluate "
            "never writes: give --sidecar-out another folder"
        )
    scored = arrays.scored
    scores = arrays.score[scored]
    if scores.size < min_exams:
        raise ConfigError(
            f"--sidecar-out: only {scores.size} scored exam(s); a calibration needs at least "
            f"{min_exams} (a few thousand is typical)"
        )
    out.mkdir(parents=True, exist_ok=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    site = _write(
        sidecar,
        scores,
        out / SITE_FILE,
        f"site reference population: {scores.size} scored exams of the backfill {source}; "
        f"calibrated by evaluate {when}",
        min_exams,
    )
    written = [
        WrittenSidecar(
            site.path,
            "site",
            scores.size,
            site.thresholds,
            "the deciles of every scored exam of the site",
        )
    ]
    site_shares = _shares(categories_of(scores, site.thresholds))
    checks = []
    used: set[str] = set()
    devices = arrays.device[scored]
    for index, device in enumerate(arrays.devices):
        own = scores[devices == index]
        if own.size == 0:
            continue
        if own.size < min_exams:
            checks.append(
                DeviceCheck(device, own.size, None, False, f"fewer than {min_exams} scored exams")
            )
            continue
        shift = float(psi(_shares(categories_of(own, site.thresholds)), site_shares))
        if shift <= DEVICE_PSI_LIMIT:
            checks.append(
                DeviceCheck(
                    device,
                    own.size,
                    shift,
                    False,
                    f"PSI {shift:.3f} <= {DEVICE_PSI_LIMIT}: the site calibration fits",
                )
            )
            continue
        why = f"PSI {shift:.3f} > {DEVICE_PSI_LIMIT} against the site's own distribution"
        name = slug(device)
        if name in used:  # two names that differ only in punctuation or case
            name = f"{name}-{index}"
        used.add(name)
        device_file = _write(
            sidecar,
            own,
            out / f"device-{name}.json",
            f"device reference population: {own.size} scored exams from {device} in the "
            f"backfill {source}; calibrated by evaluate {when}",
            min_exams,
        )
        written.append(
            WrittenSidecar(device_file.path, device, own.size, device_file.thresholds, why, shift)
        )
        checks.append(DeviceCheck(device, own.size, shift, True, why))
    return written, checks


@dataclass(frozen=True)
class _Written:
    path: Path
    thresholds: tuple[float, ...]


def _write(
    sidecar: Sidecar, scores: np.ndarray, path: Path, reference: str, min_exams: int
) -> _Written:
    calibration = calibration_from_scores(scores, reference, min_exams=min_exams)
    write_sidecar(sidecar.model_copy(update={"calibration": calibration}), path)
    return _Written(path, calibration.thresholds)
