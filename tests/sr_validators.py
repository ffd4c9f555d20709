"""Independent DICOM checkers for the objects mammotriage writes, as an outside reviewer runs
them: dicom3tools' ``dciodvfy`` (IOD and attribute rules) and PixelMed's
``DicomSRValidator`` (SR IOD, templates, relationships and context groups).

Neither shares code with pydicom or highdicom, so a report they accept is not accepted only
because the library that wrote it reads it back. ``make test`` installs both (Debian
``dicom3tools`` and ``pixelmed-apps``, see ``scripts/install-system-deps.sh``); a missing
tool fails the test that needs it, never skips it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

DCIODVFY = "dciodvfy"
#: Debian's libpixelmed-java; its manifest's Class-Path names the jars it depends on.
PIXELMED_JAR = "/usr/share/java/pixelmed.jar"
#: The SR validator builds XPath expressions far beyond the JDK's default limits.
_JAVA_XPATH_LIMITS = (
    "-Djdk.xml.xpathExprOpLimit=0",
    "-Djdk.xml.xpathExprGrpLimit=0",
    "-Djdk.xml.xpathTotalOpLimit=0",
)
#: Beyond the content checks: the template identifiers the document claims, templates that
#: more than one could match, and content item order within each template.
_PIXELMED_OPTIONS = ("-checktemplateid", "-checkambiguoustemplate", "-checkcontentitemorder")
#: The last line of a PixelMed run that got to the end (it prints a stack trace and exits 0
#: on a file it cannot read).
_PIXELMED_DONE = "IOD validation complete"
# A JVM per file and a large stylesheet: tens of seconds each on a busy machine.
_TIMEOUT_S = 600


@dataclass(frozen=True)
class Verdict:
    """What one validator said about one file: its error and warning lines."""

    errors: list[str]
    warnings: list[str]
    output: str


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=_TIMEOUT_S)


def dciodvfy(path: str | os.PathLike[str]) -> Verdict:
    """dciodvfy's verdict: its ``Error - ...`` and ``Warning - ...`` lines (it writes them to
    stderr, with the module or attribute they concern)."""
    assert shutil.which(DCIODVFY), "dciodvfy missing: make test installs dicom3tools"
    result = _run([DCIODVFY, "-new", str(path)])
    output = result.stdout + result.stderr
    lines = [line.strip() for line in output.splitlines()]
    return Verdict(
        errors=[line for line in lines if line.startswith("Error")],
        warnings=[line for line in lines if line.startswith("Warning")],
        output=output,
    )


def dciodvfy_errors(path: str | os.PathLike[str]) -> list[str]:
    """The errors dciodvfy finds in the file (empty when it conforms)."""
    return dciodvfy(path).errors


_PIXELMED_ERROR = re.compile(r"^\s*Error\b")
_PIXELMED_WARNING = re.compile(r"^\s*Warning\b")


def pixelmed_sr(path: str | os.PathLike[str]) -> Verdict:
    """PixelMed DicomSRValidator's verdict on an SR file: IOD, root template and the
    templates it includes, context groups, and the options in ``_PIXELMED_OPTIONS``."""
    assert shutil.which("java"), "java missing: make test installs pixelmed-apps"
    assert Path(PIXELMED_JAR).is_file(), f"{PIXELMED_JAR} missing: make test installs pixelmed-apps"
    command = [
        "java",
        *_JAVA_XPATH_LIMITS,
        "-cp",
        PIXELMED_JAR,
        "com.pixelmed.validate.DicomSRValidator",
        *_PIXELMED_OPTIONS,
        str(path),
    ]
    result = _run(command)
    output = result.stdout + result.stderr
    lines = output.splitlines()
    errors = [line.strip() for line in lines if _PIXELMED_ERROR.match(line)]
    if result.returncode != 0 or _PIXELMED_DONE not in output:
        errors.append(
            f"DicomSRValidator did not finish (exit {result.returncode}): {output[-500:]}"
        )
    return Verdict(
        errors=errors,
        warnings=[line.strip() for line in lines if _PIXELMED_WARNING.match(line)],
        output=output,
    )


def pixelmed_sr_errors(path: str | os.PathLike[str]) -> list[str]:
    """The errors PixelMed's SR validator finds in the file (empty when it conforms)."""
    return pixelmed_sr(path).errors


def validate_all(
    paths: Sequence[str | os.PathLike[str]],
) -> dict[str, tuple[Verdict, Verdict]]:
    """(dciodvfy, PixelMed) verdicts for every file, run side by side: each PixelMed run is
    a JVM of its own that spends most of its time compiling the same stylesheet."""
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(paths)))) as pool:
        futures = {
            str(path): (pool.submit(dciodvfy, path), pool.submit(pixelmed_sr, path))
            for path in paths
        }
        return {path: (a.result(), b.result()) for path, (a, b) in futures.items()}


def problems(verdicts: dict[str, tuple[Verdict, Verdict]]) -> dict[str, list[str]]:
    """Every error of every file, by file name and validator; empty when all conform."""
    found: dict[str, list[str]] = {}
    for path, (iod, sr) in verdicts.items():
        errors = [f"dciodvfy: {e}" for e in iod.errors] + [f"pixelmed: {e}" for e in sr.errors]
        if errors:
            found[Path(path).name] = errors
    return found
