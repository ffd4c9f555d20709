"""Site calibration: the category cut points measured on a site's own screening population.

A category means "this exam is among the x-th tenth of our screening population", and a
model's score distribution moves with every site's vendors, processing and population. The
export measured the thresholds on its validation split; before a site adopts a policy it
scores a reference set of its own exams (a few thousand consecutive screening exams) and
replaces the calibration table with their exam-score deciles. Everything else in the
sidecar (preprocessing, aggregation, sha256) stays as exported, so the new sidecar still
describes the same ``.onnx`` file.

The exam score is the one the engine reports (the sidecar's aggregation of image
probabilities, x 100), exactly as the export defined it for its own table.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mammotriage.category import THRESHOLD_COUNT
from mammotriage.errors import ConfigError
from mammotriage.sidecar import Calibration, Sidecar, sidecar_path, write_sidecar

#: Fewer exams than this cannot place nine cut points with any meaning.
MIN_EXAMS = 20
_DECILES = np.linspace(0.1, 0.9, THRESHOLD_COUNT)


def decile_thresholds(scores: npt.ArrayLike) -> tuple[float, ...]:
    """Nine cut points at the 10th-90th percentiles of ``scores``, non-decreasing.

    Rounded to 4 decimals (as the export rounds) and then made non-decreasing, so that
    rounding can never produce a descending pair.

    Raises
    ------
    ValueError
        If ``scores`` is empty or holds a non-finite value.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError('Argument "scores" must be a non-empty set of finite exam scores.')
    cuts = np.maximum.accumulate(np.round(np.quantile(values, _DECILES), 4))
    return tuple(float(t) for t in cuts)


def too_few_exams(
    exams: int, scored: int | None = None, *, min_exams: int = MIN_EXAMS
) -> str | None:
    """The one rule on how many exams a calibration table needs, shared by ``calibrate``
    (which refuses) and ``export`` (which warns, in the sidecar and on the console): the
    reason the ``exams`` found (``scored`` of them with a score) are too few, or None."""
    scored = exams if scored is None else scored
    if exams < min_exams:
        return (
            f"too few exams: {exams}, calibration needs at least {min_exams} "
            "(a few thousand is typical)"
        )
    if scored < min_exams:
        return (
            f"too few scorable exams: only {scored} of {exams} could be scored, calibration "
            f"needs at least {min_exams} (a few thousand is typical)"
        )
    return None


def calibration_from_scores(
    scores: npt.ArrayLike, reference: str, *, min_exams: int = MIN_EXAMS
) -> Calibration:
    """The calibration table for a reference population's exam scores; with fewer than
    ``min_exams`` scores it carries a warning (:func:`too_few_exams`)."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    return Calibration(
        thresholds=decile_thresholds(values),
        reference=reference,
        exams=int(values.size),
        warning=too_few_exams(int(values.size), min_exams=min_exams),
    )


def calibrate(
    model_path: Path,
    data: Path | Iterable[Path],
    out_sidecar_path: Path | None = None,
    *,
    population: str | None = None,
    batch_size: int = 8,
    decode_workers: int = 2,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    min_exams: int = MIN_EXAMS,
) -> Calibrated:
    """Score a reference population and write a sidecar with its decile thresholds.

    Parameters
    ----------
    model_path
        The ``.onnx`` model; its sidecar must sit beside it.
    data
        A folder of DICOM (walked recursively) or a list of files and folders.
    out_sidecar_path
        Where to write the new sidecar; default: the model's own sidecar (``NAME.json``
        beside ``NAME.onnx``), which is replaced after the old one is copied to a backup
        (:attr:`Calibrated.backup`). The packaged demonstration model's sidecar is never
        modified: calibrating it needs ``out_sidecar_path``.
    population
        Words for the reference population in the sidecar (default: the data paths).

    Returns
    -------
    Calibrated
        The written sidecar (the model's own with only ``calibration`` replaced; its
        ``reference`` says what population, how many exams and when), where it was written
        and the backup of the sidecar it replaced, if any.

    Raises
    ------
    ConfigError
        If the model cannot be loaded, ``data`` does not exist, fewer than ``min_exams``
        exams could be scored, or the target is the packaged model's own sidecar.
    """
    from mammotriage.infer.engine import ScoringEngine

    paths = [Path(data)] if isinstance(data, (str, Path)) else [Path(p) for p in data]
    missing = [p for p in paths if not p.exists()]
    if not paths or missing:
        raise ConfigError(f"reference data {missing[0] if missing else '(none)'} not found")
    target = Path(out_sidecar_path) if out_sidecar_path is not None else sidecar_path(model_path)
    if _packaged(target):
        raise ConfigError(
            f"{target} is the packaged demonstration model's sidecar, which calibrate never "
            "modifies: give --out NEW.json (and copy the .onnx beside it as NEW.onnx to use it)"
        )
    with ScoringEngine(
        Path(model_path),
        batch_size=batch_size,
        decode_workers=decode_workers,
        threads=threads,
        providers=providers,
    ) as engine:
        exams = engine.score_paths(paths)
        sidecar = engine.sidecar
    scores = [e.score for e in exams if e.score is not None]
    problem = too_few_exams(len(exams), len(scores), min_exams=min_exams)
    if problem is not None:
        raise ConfigError(f"{problem}; in {', '.join(map(str, paths))}")
    partial = sum(e.partial for e in exams if e.score is not None)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    where = population or ", ".join(str(p) for p in paths)
    reference = (
        f"site reference population: {where}; {len(scores)} exams scored "
        f"({partial} partial, {len(exams) - len(scores)} unscorable left out); calibrated {when}"
    )
    updated = sidecar.model_copy(
        update={"calibration": calibration_from_scores(scores, reference, min_exams=min_exams)}
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if target.exists():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        backup = target.with_name(f"{target.name}.{stamp}.bak")
        shutil.copy2(target, backup)
    write_sidecar(updated, target)
    return Calibrated(updated, target, backup)


@dataclass(frozen=True)
class Calibrated:
    """What :func:`calibrate` wrote: the sidecar, where, and the backup of the one it
    replaced (None when nothing was there)."""

    sidecar: Sidecar
    path: Path
    backup: Path | None


def _packaged(path: Path) -> bool:
    """Whether ``path`` lies in the package's own folder of defaults (the shipped model)."""
    from mammotriage import defaults

    folder = Path(defaults.__file__).resolve().parent
    return path.resolve().parent == folder
