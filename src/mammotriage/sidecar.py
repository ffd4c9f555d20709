"""The model sidecar: ``models/NAME.json`` next to ``models/NAME.onnx``.

One source of truth per fact: the input size, the preprocessing parameters, the output
names, how image scores aggregate to breasts and exams, and the calibration table live
here, written at export and read by inference. Code holds no copy of them. Torch-free: the
export side (``mammotriage.model``) and the inference side both import this module.

Lower-precision copies (``NAME.int8.onnx``, ``NAME.fp16.onnx``) have no sidecar of their
own: export lists them under ``variants`` of ``NAME.json``, since they share its
preprocessing, outputs and calibration. :func:`load_sidecar` given such a file returns a
sidecar *for the copy*: its own sha256 (a variant is a different model, and scores are
stored per model sha256), a name that says the precision, and what the copy costs in
accuracy (:class:`VariantOf`).
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


Precision = Literal["int8", "fp16"]


class Variant(_Frozen):
    """A quantised or half-precision copy of the model and what it costs in accuracy.

    ``max_abs_logit_delta`` is the largest ``|copy - fp32|`` image logit on the export's
    parity images; ``auc_delta`` the change of the validation split's exam AUC (copy minus
    fp32). Export measures and records both; it applies no AUC tolerance.
    """

    file: str
    precision: Precision
    sha256: str
    max_abs_logit_delta: float
    auc_delta: float | None = None


class VariantOf(_Frozen):
    """In the sidecar of a lower-precision copy: the fp32 model it was made from (name,
    file, sha256) and the copy's measured cost, as the fp32 model's ``variants`` entry
    records it. Whoever reads a score made by the copy can thus trace it to the validated
    model and see how far the copy may stray from it."""

    name: str
    onnx_file: str
    sha256: str
    precision: Precision
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
    #: Set only in the sidecar of a lower-precision copy (see :func:`variant_sidecar`).
    variant_of: VariantOf | None = None
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
    def precision(self) -> Literal["fp32", "int8", "fp16"]:
        """The arithmetic of the model's weights: fp32 for an export, else the copy's."""
        return "fp32" if self.variant_of is None else self.variant_of.precision

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


def variant_sidecar(base: Sidecar, variant: Variant) -> Sidecar:
    """The sidecar of ``variant``, a lower-precision copy listed in ``base.variants``.

    What the copy shares with the fp32 model (preprocessing, outputs, aggregation,
    calibration, architecture, training data, intended use) is taken over; what differs is
    replaced, so that nothing the copy's scores carry claims more than was measured:

    - ``sha256`` and ``onnx_file`` are the copy's: scores are stored, and reports
      identified, by the sha256 of the model that made them;
    - ``name`` gets the precision, ``"NAME (int8)"``, because the name is what the SR's
      algorithm identification, HL7 OBX-18 and the reading page show;
    - ``parity`` is the copy's measured logit delta against the fp32 model, and
      ``validation`` holds only the exam AUC the copy reached (fp32 AUC plus
      ``auc_delta``), when export measured it;
    - ``variant_of`` names the fp32 model and the copy's recorded deltas.
    """
    validation: dict[str, Any] = {}
    base_auc = base.validation.get("exam_auc")
    if variant.auc_delta is not None and isinstance(base_auc, (int, float)):
        validation = {
            key: base.validation[key] for key in ("split", "exams") if key in base.validation
        }
        validation |= {
            "exam_auc": float(base_auc) + variant.auc_delta,
            "exam_auc_delta": variant.auc_delta,
            "fp32_exam_auc": float(base_auc),
        }
    return Sidecar.model_validate(
        {
            **base.model_dump(),
            "name": f"{base.name} ({variant.precision})",
            "onnx_file": variant.file,
            "sha256": variant.sha256,
            "parity": {
                "max_abs_logit_delta": variant.max_abs_logit_delta,
                "reference": f"{base.onnx_file} (fp32) under ONNX Runtime",
            },
            "validation": validation,
            "variants": (),
            "variant_of": VariantOf(
                name=base.name,
                onnx_file=base.onnx_file,
                sha256=base.sha256,
                precision=variant.precision,
                max_abs_logit_delta=variant.max_abs_logit_delta,
                auc_delta=variant.auc_delta,
            ),
        }
    )


def base_sidecar_path(onnx_path: Path) -> Path | None:
    """Where the sidecar listing ``onnx_path`` as a variant would be: ``NAME.json`` for
    ``NAME.int8.onnx`` (export names copies ``NAME.<precision>.onnx``); None for a file
    whose name has no such inner suffix."""
    stem = onnx_path.name.removesuffix(onnx_path.suffix)
    base, dot, _ = stem.rpartition(".")
    return onnx_path.with_name(f"{base}.json") if dot and base else None


def _read(path: Path) -> Sidecar:
    """Parse and validate one sidecar file (FileNotFoundError passes through)."""
    try:
        sidecar = Sidecar.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise ConfigError(f"model sidecar {path} is invalid: {exc.errors()[0]['msg']}") from exc
    try:
        sidecar.preprocess_params  # noqa: B018 - validates the preprocessing block
    except ConfigError as exc:
        raise ConfigError(f"model sidecar {path}: {exc}") from exc
    return sidecar


def load_sidecar(onnx_path: Path, *, verify_hash: bool = True) -> Sidecar:
    """Read and validate the sidecar of ``onnx_path``.

    ``NAME.json`` beside ``NAME.onnx`` when there is one. Otherwise, for a copy written by
    ``export --int8/--fp16`` (``NAME.int8.onnx``), the entry of ``NAME.json``'s
    ``variants`` that lists this file, as :func:`variant_sidecar` describes it.

    Raises
    ------
    ConfigError
        If no sidecar describes the file (neither its own nor a ``variants`` entry of the
        model it was made from), a sidecar is malformed, or (``verify_hash``) the file's
        sha256 differs from the one recorded for it.
    """
    onnx_path = Path(onnx_path)
    path = sidecar_path(onnx_path)
    try:
        sidecar = _read(path)
    except FileNotFoundError:
        sidecar = _listed_variant(onnx_path, path)
        recorded_in = f"the variants of its model's sidecar {base_sidecar_path(onnx_path)}"
    else:
        recorded_in = f"its sidecar {path}"
    if verify_hash and onnx_path.exists() and sha256_of(onnx_path) != sidecar.sha256:
        raise ConfigError(f"{onnx_path} does not match the sha256 in {recorded_in}")
    return sidecar


def _listed_variant(onnx_path: Path, own: Path) -> Sidecar:
    """The sidecar of ``onnx_path`` as a variant listed by its model's sidecar.

    Raises
    ------
    ConfigError
        Naming both places looked in, when neither describes the file.
    """
    missing = f"model sidecar {own} is missing; export writes it beside the .onnx"
    base_path = base_sidecar_path(onnx_path)
    if base_path is None:
        raise ConfigError(missing)
    try:
        base = _read(base_path)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"model sidecar {own} is missing, and so is {base_path}, whose variants would "
            f"list {onnx_path.name}; export writes them beside the .onnx"
        ) from exc
    entry = next((v for v in base.variants if v.file == onnx_path.name), None)
    if entry is None:
        listed = ", ".join(v.file for v in base.variants) or "none"
        raise ConfigError(
            f"model sidecar {own} is missing, and {base_path} lists no variant "
            f"{onnx_path.name} (its variants: {listed})"
        )
    return variant_sidecar(base, entry)
