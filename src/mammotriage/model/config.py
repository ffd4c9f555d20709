"""Training configuration: ``configs/train-*.yaml``, validated once at the boundary.

Architecture, input size and normalisation are configuration, not code: the network block
goes to :func:`mammotriage.model.network.build_network`, the preprocess block becomes
:class:`mammotriage.preprocess.PreprocessParams` and travels on into the exported model's
sidecar, so training and inference cannot disagree. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mammotriage.errors import ConfigError
from mammotriage.preprocess import PreprocessParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Where the images come from and how they are split (by patient)."""

    root: Path | None = None
    kind: Literal["synthetic", "rsna", "vindr", "cbis-ddsm"] | None = None
    val_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    cache_dir: Path | None = None
    workers: int = Field(default=2, ge=1)


class OptimConfig(_Strict):
    """Optimisation and stopping."""

    epochs: int = Field(default=12, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    balance: Literal["sampler", "loss", "none"] = "sampler"
    map_supervision: float = Field(
        default=1.0, ge=0, description="weight of the lesion-box loss on the suspicion map (0: off)"
    )
    augment: bool = True
    patience: int = Field(
        default=4, ge=1, description="epochs without a better validation AUC before stopping"
    )
    max_steps_per_epoch: int | None = Field(default=None, ge=1)
    threads: int | None = Field(default=None, ge=1)


class TrainConfig(_Strict):
    """A whole training recipe."""

    name: str = "mammotriage-default"
    seed: int = 0
    data: DataConfig = DataConfig()
    preprocess: dict[str, Any]
    network: dict[str, Any]
    optim: OptimConfig = OptimConfig()

    @field_validator("preprocess")
    @classmethod
    def _valid_preprocess(cls, value: dict[str, Any]) -> dict[str, Any]:
        PreprocessParams.from_dict(value)  # raises ConfigError with the reason
        return value

    @property
    def preprocess_params(self) -> PreprocessParams:
        return PreprocessParams.from_dict(self.preprocess)


def load_train_config(path: Path, **overrides: Any) -> TrainConfig:
    """Read a YAML training recipe; ``overrides`` replace top-level or ``data`` keys.

    Raises
    ------
    ConfigError
        If the file is missing, not YAML, or any value is invalid (the message names it).
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"training config {path} not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"training config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"training config {path} must be a mapping")
    data = dict(raw.get("data") or {})
    for key in ("root", "kind", "cache_dir"):
        if overrides.get(key) is not None:
            data[key] = overrides[key]
    raw["data"] = data
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"training config {path}: {where}: {first['msg']}") from exc
    except ConfigError as exc:
        raise ConfigError(f"training config {path}: {exc}") from exc
