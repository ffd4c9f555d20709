"""The commands for looking at images: ``synth`` (write phantom exams) and ``inspect``
(what mammotriage reads in DICOM files).

Plain functions; :mod:`mammotriage.cli.main` adds them to the app. The DICOM and synthetic
data modules are imported inside each command so that ``--help`` stays instant.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mammotriage.cli.common import console, fail, progress
from mammotriage.errors import ConfigError, MammotriageError


def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the exams and truth.csv into.")],
    exams: Annotated[int, typer.Option("--exams", "-n", min=1, help="Number of exams.")] = 20,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed writes the same files.")
    ] = 0,
    small: Annotated[bool, typer.Option("--small", help="Small images, for fast tests.")] = False,
    prevalence: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of exams with a cancer.")
    ] = 0.2,
    vendor: Annotated[
        list[str] | None,
        typer.Option(
            help="Vendor profile to use (repeat for several; default: the six-vendor mix). "
            "hologic-like-updated is hologic-like after a processing update that moves the "
            "model's scores (for monitoring drills)."
        ),
    ] = None,
    first_day: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First study date (YYYY-MM-DD)."),
    ] = None,
    last_day: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last study date (YYYY-MM-DD)."),
    ] = None,
) -> None:
    """Write synthetic screening exams (phantoms, not real patients) as vendor-variant DICOM."""
    from mammotriage import synth as synth_mod

    try:
        profiles = [synth_mod.profile_by_key(key) for key in vendor] if vendor else None
    except ValueError as exc:
        fail(ConfigError(str(exc)))
    dates = None
    if first_day is not None or last_day is not None:
        if first_day is None or last_day is None:
            fail(ConfigError("--from and --to go together"))
        dates = (first_day.date(), last_day.date())
        if dates[1] < dates[0]:
            fail(ConfigError(f"--to {dates[1]} is before --from {dates[0]}"))
    try:
        with progress() as bar:
            task = bar.add_task("writing exams", total=exams)
            rows = synth_mod.generate(
                out, exams=exams, seed=seed, small=small, prevalence=prevalence,
                progress=lambda n: bar.update(task, completed=n),
                profiles=profiles, dates=dates,
            )
    except MammotriageError as exc:
        fail(exc)
    cancers = len({r.exam_id for r in rows if int(r.cancer)})
    console.print(f"wrote {len(rows)} images in {exams} exams ({cancers} with cancer) to {out}")


def _image_record(image: Any) -> dict[str, Any]:
    return {
        "kind": "image",
        "path": str(image.path) if image.path else None,
        "sop_instance_uid": image.sop_instance_uid,
        "exam_id": image.exam_id,
        "laterality": image.laterality.value,
        "laterality_source": image.laterality_source.value,
        "view": image.view.value,
        "view_source": image.view_source.value,
        "usable": image.usable,
        "reason": image.reason,
        "transfer_syntax": image.transfer_syntax_uid,
        "transfer_syntax_name": image.transfer_syntax_name,
        "rows": image.rows,
        "columns": image.columns,
        "bits_stored": image.bits_stored,
        "photometric_interpretation": image.photometric_interpretation,
        "presentation_intent": (
            image.presentation_intent.value if image.presentation_intent else None
        ),
        "flip_horizontal": image.flip_horizontal,
        "flip_vertical": image.flip_vertical,
        "orientation_source": image.orientation_source.value,
        "implant_displaced": image.implant_displaced,
        "secondary_capture": image.secondary_capture,
        "manufacturer": image.manufacturer,
    }


def _exam_record(exam: Any) -> dict[str, Any]:
    return {
        "kind": "exam",
        "exam_id": exam.exam_id,
        "exam_id_source": exam.exam_id_source,
        "views": exam.present,
        "missing": exam.missing,
        "duplicated": exam.duplicated,
        "choices": exam.choices,
        "extra_views": sorted(set(exam.selected) - set(exam.present)),
        "partial": exam.partial,
        "images": len(exam.images),
        "usable_images": len(exam.usable_images),
    }


def inspect(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (walked recursively).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Show what mammotriage reads in DICOM files: laterality, view, usability, exams."""
    from mammotriage.dicom import group_exams, iter_files, read_image

    files = list(iter_files(paths))
    missing = [p for p in files if not p.exists()]
    if missing:
        console.print(f"[red]error:[/red] no such file or folder: {missing[0]}")
        raise typer.Exit(code=2)
    images = []
    with progress() as bar:
        task = bar.add_task("reading", total=len(files))
        for path in files:
            images.append(read_image(path, load_pixels=False))
            bar.advance(task)
    exams = group_exams(images)

    if as_json:
        out = sys.stdout
        for image in images:
            out.write(json.dumps(_image_record(image)) + "\n")
        for exam in exams:
            out.write(json.dumps(_exam_record(exam)) + "\n")
        return

    table = Table(title=f"{len(images)} files, {len(exams)} exams")
    headings = (
        "file", "exam", "lat (source)", "view (source)", "usable / reason", "syntax", "size"
    )
    for column in headings:
        table.add_column(column, overflow="fold")
    for image in images:
        table.add_row(
            image.path.name if image.path else "?",
            image.exam_id[-12:],
            f"{image.laterality.value} ({image.laterality_source.value})",
            f"{image.view.value} ({image.view_source.value})",
            "yes" if image.usable else f"[red]no[/red]: {image.reason}",
            image.transfer_syntax_name or "-",
            f"{image.rows}x{image.columns}",
        )
    Console().print(table)
    exams_table = Table(title="exams")
    for column in ("exam", "views", "missing", "duplicates", "partial"):
        exams_table.add_column(column, overflow="fold")
    for exam in exams:
        exams_table.add_row(
            exam.exam_id[-24:],
            " ".join(exam.present) or "-",
            " ".join(exam.missing) or "-",
            "; ".join(f"{k}: {v}" for k, v in exam.choices.items()) or "-",
            "yes" if exam.partial else "no",
        )
    Console().print(exams_table)
