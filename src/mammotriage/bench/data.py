"""The benchmark's data: synthetic JPEG 2000 exams, written once into a cache folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from mammotriage.bench.common import Say
from mammotriage.errors import ConfigError

if TYPE_CHECKING:
    from mammotriage.synth import ExamPlan

#: JPEG 2000 Image Compression (Lossless Only) and JPEG 2000 Image Compression (PS3.5 A.4.4).
JPEG2000_SYNTAXES = {"1.2.840.10008.1.2.4.90": "lossless", "1.2.840.10008.1.2.4.91": "lossy"}


def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/mammotriage/bench`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mammotriage" / "bench"


def prepare_data(
    root: Path, exams: int, *, seed: int = 0, small: bool = False, say: Say | None = None
) -> list[Path]:
    """The first ``exams`` JPEG 2000 exam folders of synthetic seed ``seed`` under ``root``.

    Exams are planned as :func:`mammotriage.synth.generate` plans them and only those of
    the JPEG 2000 vendor profiles (lossless and lossy) are written: the same files that
    ``generate`` would write, without the four other profiles it would render only to be
    thrown away. Written once; later runs reuse them (``truth.csv`` lists the finished).

    Raises
    ------
    ConfigError
        If a cached file is not JPEG 2000 (the folder holds something else).
    """
    from mammotriage.synth import generate_exam, plan_exams, read_truth, write_truth

    folder = root / f"{'small' if small else 'full'}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    truth = folder / "truth.csv"
    rows = read_truth(truth) if truth.exists() else []
    done = {row.path.split("/")[0] for row in rows}
    plans: list[ExamPlan] = []
    total = 0
    while len(plans) < exams:  # every sixth exam per profile: grow the plan until enough
        total += 6
        candidates = plan_exams(total, seed=seed, small=small)
        plans = [p for p in candidates if str(p.profile.transfer_syntax) in JPEG2000_SYNTAXES]
    plans = plans[:exams]
    wanted = [f"{plan.index + 1:05d}" for plan in plans]
    missing = [plan for plan, name in zip(plans, wanted, strict=True) if name not in done]
    if missing:
        if say:
            say(
                f"writing {len(missing)} {'small' if small else 'full-size'} JPEG 2000 exam(s) "
                f"into {folder} (once)"
            )
        if len(missing) > 1 and not small:
            with ProcessPoolExecutor(min(len(missing), os.cpu_count() or 1)) as pool:
                new = [
                    r
                    for result in pool.map(generate_exam, [folder] * len(missing), missing)
                    for r in result
                ]
        else:
            new = [r for plan in missing for r in generate_exam(folder, plan)]
        rewritten = {row.path.split("/")[0] for row in new}  # half-written before: replaced
        rows = [row for row in rows if row.path.split("/")[0] not in rewritten] + new
        write_truth(truth, rows)
    bad = [
        r.path
        for r in rows
        if r.path.split("/")[0] in wanted and r.transfer_syntax not in JPEG2000_SYNTAXES
    ]
    if bad:
        raise ConfigError(f"{folder / bad[0]} is not JPEG 2000; use another --data folder")
    return [folder / name for name in wanted]


def describe(exam_folders: Sequence[Path]) -> tuple[list[Path], dict[str, int], list[str]]:
    """Files, count per JPEG 2000 flavour and image sizes, read from the files themselves."""
    import pydicom

    files: list[Path] = []
    syntaxes: dict[str, int] = {}
    sizes: set[str] = set()
    for folder in exam_folders:
        for path in sorted(folder.glob("*.dcm")):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            kind = JPEG2000_SYNTAXES.get(str(ds.file_meta.TransferSyntaxUID))
            if kind is None:
                raise ConfigError(f"{path} is not JPEG 2000; use another --data folder")
            files.append(path)
            syntaxes[f"JPEG 2000 {kind}"] = syntaxes.get(f"JPEG 2000 {kind}", 0) + 1
            sizes.add(f"{ds.Rows}x{ds.Columns}")
    return files, syntaxes, sorted(sizes)
