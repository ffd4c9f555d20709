"""The model sidecar: ``models/NAME.json`` next to ``models/NAME.onnx``.

One source of truth per fact: the input size, the preprocessing parameters, the output
names, how image scores aggregate to breasts and exams, and the calibration table live
here, written at export and read by inference. Code holds no copy of them. Torch-free: the
export side (``mammotriage.model``) and the inference side both import this module.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mammotriage.category import check_thresholds
from mammotriage.errors import ConfigError
from mammotriage.preprocess import PreprocessParams

SIDECAR_FORMAT = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Outputs(_Frozen):
    """Names of the ONNX graph's input and outputs."""

    input: str = "image"
    logit: str = "malignancy_logit"
    suspicion_map: str = "suspicion_map"


class Aggregation(_Frozen):
    """How image scores become breast and exam scores (max over views, then breasts)."""

    breast: Literal["max", "mean"] = "max"
    exam: Literal["max", "mean"] = "max"


class Calibration(_Frozen):
    """Exam-score cut points for categories 1-10 (nine ascending thresholds on the 0-100
    score), chosen so that each category holds about 10 % of a reference screening
    population, and where that population came from."""

    thresholds: tuple[float, ...] = Field(default=(10, 20, 30, 40, 50, 60, 70, 80, 90))
    reference: str = "uncalibrated: evenly spaced score thresholds"
    exams: int = 0
    #: Why this table should not be trusted as it is (e.g. too few exams), or None.
    warning: str | None = None

    @field_validator("thresholds")
    @classmethod
    def _nine_ascending(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return check_thresholds(value)


class Variant(_Frozen):
    """A quantised or half-precision copy of the model and what it costs in accuracy."""

    file: str
    precision: Literal["int8", "fp16"]
    sha256: str
    max_abs_logit_delta: float
    auc_delta: float | None = None


#: What everything made with a demonstration model says (score output, SR, reading page).
DEMONSTRATION_NOTICE = "demonstration model, not for clinical use"


class Sidecar(_Frozen):
    """Everything inference needs to know about one exported model."""

    format: int = SIDECAR_FORMAT
    name: str
    onnx_file: str
    sha256: str
    created: str
    mammotriage_version: str
    preprocess: dict[str, Any]
    outputs: Outputs = Outputs()
    aggregation: Aggregation = Aggregation()
    calibration: Calibration = Calibration()
    architecture: dict[str, Any] = Field(default_factory=dict)
    map_stride: int = 32
    training_data: dict[str, Any] = Field(default_factory=dict)
    validation: dict[str, Any] = Field(default_factory=dict)
    parity: dict[str, Any] = Field(default_factory=dict)
    variants: tuple[Variant, ...] = ()
    intended_use: str = (
        "Demonstration and tests only; not for clinical use. Retrain and validate on your own "
        "site's data before any use."
    )

    @property
    def demonstration(self) -> bool:
        """Whether this model was trained on synthetic data (``training_data.synthetic``, or
        for an older export ``training_data.kind == "synthetic"``): a demonstration model,
        not for clinical use. The worker refuses it unless its settings allow it, and
        everything made with it says so."""
        synthetic = self.training_data.get("synthetic")
        if synthetic is not None:
            return bool(synthetic)
        return self.training_data.get("kind") == "synthetic"

    @property
    def preprocess_params(self) -> PreprocessParams:
        return PreprocessParams.from_dict(self.preprocess)

    @property
    def input_shape(self) -> tuple[int, int]:
        params = self.preprocess_params
        return params.input_height, params.input_width


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def write_sidecar(sidecar: Sidecar, path: Path) -> None:
    path.write_text(json.dumps(sidecar.model_dump(mode="json"), indent=2) + "\n")


def load_sidecar(onnx_path: Path, *, verify_hash: bool = True) -> Sidecar:
    """Read and validate the sidecar of ``onnx_path``.

    Raises
    ------
    ConfigError
        If the sidecar is missing, malformed, or (``verify_hash``) does not describe the
        ``.onnx`` file beside it.
    """
    path = sidecar_path(onnx_path)
    try:
        sidecar = Sidecar.model_validate_json(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"model sidecar {path} is missing; export writes it beside the .onnx"
        ) from exc
    except ValidationError as exc:
        raise ConfigError(f"model sidecar {path} is invalid: {exc.errors()[0]['msg']}") from exc
    try:
        sidecar.preprocess_params  # noqa: B018 - validates the preprocessing block
    except ConfigError as exc:
        raise ConfigError(f"model sidecar {path}: {exc}") from exc
    if verify_hash and onnx_path.exists() and sha256_of(onnx_path) != sidecar.sha256:
        raise ConfigError(f"{onnx_path} does not match the sha256 in its sidecar {path}")
    return sidecar
