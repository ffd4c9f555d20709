"""Typed settings read from a YAML file in ``configs/`` and the environment, the one way
every long-running command (worker, reading service) is configured.

The environment wins over the file (``MAMMOTRIAGE_<PART>_<FIELD>``, nested fields joined by
``__``), so that secrets need not be written into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from mammotriage.errors import ConfigError


class YamlSettings(BaseSettings):
    """Settings whose init values come from a YAML file and whose environment wins over them."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings


_S = TypeVar("_S", bound=YamlSettings)


def load_settings(cls: type[_S], path: Path | None, what: str, **overrides: Any) -> _S:
    """``cls`` from the YAML file at ``path`` (optional), ``overrides`` and the environment.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not a YAML mapping, or a value is wrong; the message
        names each wrong field by its path (``source.quiet_seconds``).
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {what} config {path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{what} config {path} must be a mapping of settings")
        raw = dict(loaded or {})
    raw.update(overrides)
    try:
        return cls(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(settings)'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ConfigError(f"{what} config {path or '(defaults)'}: {problems}") from exc


__all__ = ["YamlSettings", "load_settings"]
