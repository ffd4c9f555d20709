"""Independent DICOM checkers for the objects mammotriage writes, as an outside reviewer runs
them: dicom3tools' ``dciodvfy`` (IOD and attribute rules) and PixelMed's
``DicomSRValidator`` (SR IOD, templates, relationships and context groups).

Neither shares code with pydicom or highdicom, so a report they accept is not accepted only
because the library that wrote it reads it back. ``make test`` installs both (Debian
``dicom3tools`` and ``pixelmed-apps``, and ``default-jdk-headless`` for the small program that
runs PixelMed on many files in one JVM; see ``scripts/install-system-deps.sh``); a missing
tool fails the test that needs it, never skips it.

The worker tests check the SRs the worker wrote through each source and fault path with the
session's :class:`Conformance`: dciodvfy on each SR as the test reads it, PixelMed on all of
them once the session's tests are over (one JVM for the session, not one per module).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fixtures_orthanc import OrthancServer

__all__ = [
    "Conformance",
    "Verdict",
    "dciodvfy",
    "dciodvfy_errors",
    "orthanc_sr_files",
    "pixelmed_sr",
    "pixelmed_sr_errors",
    "pixelmed_sr_many",
    "problems",
    "validate_all",
]

DCIODVFY = "dciodvfy"
#: Debian's libpixelmed-java; its manifest's Class-Path names the jars it depends on.
PIXELMED_JAR = "/usr/share/java/pixelmed.jar"
#: The SR validator builds XPath expressions far beyond the JDK's default limits. The JIT's
#: first tier alone: the optimising compiler costs more CPU than it saves in one run.
_JAVA_OPTIONS = (
    "-Djdk.xml.xpathExprOpLimit=0",
    "-Djdk.xml.xpathExprGrpLimit=0",
    "-Djdk.xml.xpathTotalOpLimit=0",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
)
#: The last line of a PixelMed validation that got to the end.
_PIXELMED_DONE = "IOD validation complete"
# One JVM for many files: tens of seconds on a busy machine, a few more per file.
_TIMEOUT_S = 600
#: Separates the files in the batch's output (PixelMed never prints a line starting so).
_MARK = "@@mammotriage-sr-validator"

#: PixelMed's own ``DicomSRValidator`` command line takes one file and its
#: ``-checktemplateid`` sets the content item order option instead (pixelmed 20220618), so
#: this program, run by the JDK's source launcher, validates every file it is given with one
#: validator (its stylesheets compiled once) and every check on: code meanings matched with
#: their case, ambiguous templates, content item order and the template identifiers the
#: document claims. A file it cannot read prints its stack trace, never the done line.
_BATCH_SOURCE = f"""
import com.pixelmed.validate.DicomSRValidator;

public class ValidateMany {{
    public static void main(String[] args) throws Exception {{
        DicomSRValidator validator = new DicomSRValidator();
        for (int i = 0; i < args.length; i++) {{
            System.out.println("{_MARK} file " + i);
            try {{
                System.out.print(validator.validate(args[i], false, true, true, true, true));
            }} catch (Exception e) {{
                e.printStackTrace(System.out);
            }}
            System.out.println();
        }}
        System.out.println("{_MARK} end");
    }}
}}
"""


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


def _pixelmed_verdict(output: str, trouble: str) -> Verdict:
    """The verdict on one file from its part of the output; ``trouble`` says why the JVM
    did not get to the end ("" when it did)."""
    lines = output.splitlines()
    errors = [line.strip() for line in lines if _PIXELMED_ERROR.match(line)]
    if trouble or _PIXELMED_DONE not in output:
        # a file it cannot read: its exception is the first line
        first = output.strip().partition("\n")[0]
        errors.append(f"DicomSRValidator did not finish: {first}{trouble}")
    return Verdict(
        errors=errors,
        warnings=[line.strip() for line in lines if _PIXELMED_WARNING.match(line)],
        output=output,
    )


def pixelmed_sr_many(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Verdict]:
    """PixelMed DicomSRValidator's verdict on each SR file, all in one JVM: IOD, root
    template and the templates it includes, context groups, template identifiers, ambiguous
    templates and content item order. Keys are the paths as given, as ``str``.

    The JVM and the validator's stylesheets cost about 10 s of CPU, each file about 4 s more:
    a test hands over every SR it has at once."""
    files = [str(path) for path in paths]
    if not files:
        return {}
    java = shutil.which("java")
    assert java, "java missing: make test installs pixelmed-apps"
    assert Path(PIXELMED_JAR).is_file(), f"{PIXELMED_JAR} missing: make test installs pixelmed-apps"
    launcher = subprocess.run(
        [java, "--list-modules"], capture_output=True, text=True, check=False
    ).stdout
    assert "jdk.compiler" in launcher, (
        "java cannot run a source file (no jdk.compiler): make test installs default-jdk-headless"
    )
    with tempfile.TemporaryDirectory(prefix="mt-pixelmed-") as folder:
        program = Path(folder) / "ValidateMany.java"
        program.write_text(_BATCH_SOURCE)
        command = [java, *_JAVA_OPTIONS, "-cp", PIXELMED_JAR, str(program), *files]
        result = _run(command)
    parts = re.split(rf"^{_MARK} (file \d+|end)$", result.stdout, flags=re.MULTILINE)
    # parts: [before, "file 0", text 0, "file 1", text 1, ..., "end", after]
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    trouble = ""
    if result.returncode != 0 or "end" not in sections:
        trouble = f" (the JVM ended with exit {result.returncode}: {result.stderr[-500:]})"
    return {
        path: _pixelmed_verdict(sections.get(f"file {i}", ""), trouble)
        for i, path in enumerate(files)
    }


def pixelmed_sr(path: str | os.PathLike[str]) -> Verdict:
    """PixelMed DicomSRValidator's verdict on one SR file (see :func:`pixelmed_sr_many`)."""
    return pixelmed_sr_many([path])[str(path)]


def pixelmed_sr_errors(path: str | os.PathLike[str]) -> list[str]:
    """The errors PixelMed's SR validator finds in the file (empty when it conforms)."""
    return pixelmed_sr(path).errors


def validate_all(
    paths: Sequence[str | os.PathLike[str]],
) -> dict[str, tuple[Verdict, Verdict]]:
    """(dciodvfy, PixelMed) verdicts for every file: dciodvfy file by file, PixelMed on all
    of them in one JVM."""
    pixelmed = pixelmed_sr_many(paths)
    return {str(path): (dciodvfy(path), pixelmed[str(path)]) for path in paths}


def problems(verdicts: dict[str, tuple[Verdict, Verdict]]) -> dict[str, list[str]]:
    """Every error of every file, by file name and validator; empty when all conform."""
    found: dict[str, list[str]] = {}
    for path, (iod, sr) in verdicts.items():
        errors = [f"dciodvfy: {e}" for e in iod.errors] + [f"pixelmed: {e}" for e in sr.errors]
        if errors:
            found[Path(path).name] = errors
    return found


def orthanc_sr_files(server: OrthancServer, study_uid: str, folder: Path) -> list[Path]:
    """Every SR Orthanc holds in the study, downloaded (``GET /instances/{id}/file``) into
    ``folder`` as ``<Orthanc id>.dcm``, exactly as Orthanc gives it out."""
    found = server.http.post("/tools/lookup", content=study_uid).json()
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for study in (item["ID"] for item in found if item["Type"] == "Study"):
        for series in server.http.get(f"/studies/{study}/series").json():
            if series["MainDicomTags"].get("Modality") != "SR":
                continue
            for instance in series["Instances"]:
                reply = server.http.get(f"/instances/{instance}/file")
                reply.raise_for_status()
                path = folder / f"{instance}.dcm"
                path.write_bytes(reply.content)
                files.append(path)
    return files


@dataclass
class Conformance:
    """The SRs the tests' workers wrote: :meth:`check` runs dciodvfy on each at once (a
    fraction of a second) and keeps it; :meth:`finish`, at the session's end, runs PixelMed
    on all of them in one JVM. A session fixture yields one and calls ``finish`` after the
    last test (of each xdist worker), so a nonconforming SR fails the run, as an error at
    that teardown which names the SR by its label."""

    #: label (what the SR is, for the failure message) -> file
    kept: dict[str, Path] = field(default_factory=dict)

    def check(self, label: str, path: str | os.PathLike[str], *, pixelmed: bool = True) -> None:
        """dciodvfy finds no error in the SR at ``path``; PixelMed's turn comes at the end
        (``pixelmed=False``: none, for one more SR of a kind already kept). A label or file
        already kept is not checked again (a test may read an SR twice)."""
        if label in self.kept or Path(path) in self.kept.values():
            return
        assert Path(path).is_file(), f"no SR {label} at {path}"
        errors = dciodvfy_errors(path)
        assert errors == [], f"dciodvfy on the SR {label}: {errors}"
        if pixelmed:
            self.kept[label] = Path(path)

    def finish(self) -> None:
        """PixelMed finds no error in any SR kept."""
        verdicts = pixelmed_sr_many(self.kept.values())
        found = {
            label: verdicts[str(path)].errors
            for label, path in self.kept.items()
            if verdicts[str(path)].errors
        }
        assert found == {}, f"PixelMed DicomSRValidator on the SRs: {found}"


@pytest.fixture(scope="session")
def conformance() -> Iterator[Conformance]:
    """The SRs the tests' workers wrote: dciodvfy on each as a test reads it, PixelMed on
    those kept after the session's last test (a failure shows at that teardown). Session-wide:
    the JVM and PixelMed's stylesheets cost 6-10 s each time, once per module before."""
    checks = Conformance()
    yield checks
    checks.finish()
