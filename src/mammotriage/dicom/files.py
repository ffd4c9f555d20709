"""Finding candidate files under the paths a user names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

# Sidecars and previews that sit beside DICOM in real archives; everything else is tried,
# since DICOM files often have no extension at all (".dcm", ".dicom", "IM0001", "1.2.3").
_SKIP_SUFFIXES = frozenset(
    {".csv", ".json", ".txt", ".md", ".png", ".jpg", ".jpeg", ".xml", ".html", ".yaml", ".yml"}
)


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield files named directly, and files under folders recursively, in sorted order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if (
                    child.is_file()
                    and child.suffix.lower() not in _SKIP_SUFFIXES
                    and not child.name.startswith(".")
                ):
                    yield child
        else:
            yield path
