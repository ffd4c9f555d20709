"""What mammotriage uses when no path is given: the demonstration model and the triage policy.

Both travel inside the package (wheel package data), so an installed runtime on a server
with no checkout finds them through :mod:`importlib.resources`, never relative to the
current directory.

- ``mammotriage-synthetic-tiny.onnx`` with its sidecar ``.json`` (and INT8/FP16 variants):
  trained on synthetic phantoms only, for demonstration and tests, not for clinical use;
  its model card is ``MODEL_CARD.md`` beside it.
- ``triage.yaml``: the Capital Region of Denmark's policy (categories 1-5 single reading,
  6-10 double, 10 read first). Copy it, change it, and name the copy with ``--policy`` or
  ``policy:`` in a config file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mammotriage.errors import ConfigError

#: File name of the demonstration model shipped in this package.
DEMONSTRATION_MODEL = "mammotriage-synthetic-tiny.onnx"
#: File name of the default triage policy shipped in this package.
TRIAGE_POLICY = "triage.yaml"


def _packaged(name: str) -> Path:
    """A file of this package as a path on disk.

    A wheel installed by pip lies unpacked in ``site-packages``; ONNX Runtime and the YAML
    reader need a real path, so a zipped install (which would hand back a non-file
    traversable) is refused with a message rather than copied to a temporary file that
    would vanish while the worker still names it.
    """
    traversable = resources.files(__name__).joinpath(name)
    path = Path(str(traversable))
    if not path.is_file():
        raise ConfigError(
            f"the packaged {name} is missing from this installation of mammotriage "
            "(reinstall it from its wheel, or name a file explicitly)"
        )
    return path


def model_path() -> Path:
    """The demonstration model (``.onnx``; its sidecar ``.json`` lies beside it)."""
    return _packaged(DEMONSTRATION_MODEL)


def policy_path() -> Path:
    """The default triage policy (``triage.yaml``)."""
    return _packaged(TRIAGE_POLICY)


__all__ = ["DEMONSTRATION_MODEL", "TRIAGE_POLICY", "model_path", "policy_path"]
