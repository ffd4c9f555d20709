"""Typed settings read from a YAML file in ``configs/`` and the environment, the one way
every long-running command (worker, reading service) is configured.

The environment wins over the file (``MAMMOTRIAGE_<PART>_<FIELD>``, nested fields joined by
``__``), so that secrets need not be written into it.

A relative path written in a config file is relative to that file's folder, so a config
means the same whichever directory a service is started from (``/etc/mammotriage/worker.yaml``
saying ``database: worklist.sqlite`` names ``/etc/mammotriage/worklist.sqlite``). A relative
path from the environment or the command line is relative to the current directory, as a
shell user expects.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
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


def _never(_value: str) -> bool:
    return False


def is_url(value: str) -> bool:
    """``postgresql+psycopg://...``, not a file path."""
    return "://" in value


@dataclass(frozen=True)
class FileRelative:
    """Field metadata: a relative value of this ``str`` field, read from a config file, is a
    path relative to that file. ``Path`` fields are so without the marker; a ``str`` field
    that holds a path or something else (a SQLite file or a database URL) says so with it,
    and ``unless`` tells the values that are no path."""

    unless: Callable[[str], bool] = _never


_S = TypeVar("_S", bound=YamlSettings)


def load_settings(cls: type[_S], path: Path | None, what: str, **overrides: Any) -> _S:
    """``cls`` from the YAML file at ``path`` (optional), ``overrides`` and the environment.

    Relative paths in the file are resolved against the file's folder (module docstring).

    Raises
    ------
    ConfigError
        If the file cannot be read, is not a YAML mapping, or a value is wrong; the message
        names each wrong field by its path (``source.quiet_seconds``) and says where the
        value came from when that was the environment.
    """
    raw = read_config_file(path, what)
    if path is not None:
        raw = resolve_file_paths(cls, raw, Path(path).absolute().parent)
    raw.update(overrides)
    try:
        return cls(**raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(cls, error) for error in exc.errors())
        raise ConfigError(f"{what} config {path or '(defaults)'}: {problems}") from exc


def read_config_file(path: Path | None, what: str) -> dict[str, Any]:
    """The mapping in the YAML file at ``path`` ({} for None), relative paths resolved."""
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {what} config {path}: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{what} config {path} must be a mapping of settings")
    return dict(loaded or {})


def resolve_file_paths(
    cls: type[BaseModel], raw: Mapping[str, Any], base: Path
) -> dict[str, Any]:
    """``raw`` with every relative path of a path field made relative to ``base``."""
    out = dict(raw)
    for name, field in cls.model_fields.items():
        if name not in out:
            continue
        value = out[name]
        if isinstance(value, Mapping):
            for model in _block_models(field.annotation, value):
                value = resolve_file_paths(model, value, base)
            out[name] = value
        elif isinstance(value, str | Path) and _is_path(field):
            marker = _file_relative(field)
            text = str(value)
            if marker is not None and marker.unless(text):
                continue
            candidate = Path(text).expanduser()
            if not candidate.is_absolute():
                candidate = Path(os.path.normpath(base / candidate))
            out[name] = str(candidate)
    return out


def _problem(cls: type[BaseModel], error: Any) -> str:
    location = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    variable = _environment_variable(cls, _field_parts(cls, [str(p) for p in error["loc"]]))
    origin = f" (from ${variable})" if variable else ""
    return f"{location or '(settings)'}{origin}: {message}"


# -- where each effective value came from ------------------------------------------------


@dataclass(frozen=True)
class SettingSource:
    """One effective setting, printed by ``mammotriage config show``."""

    key: str
    value: Any
    source: str


def describe_settings(
    settings: YamlSettings, path: Path | None, what: str
) -> list[SettingSource]:
    """Each setting of ``settings`` (dotted keys), its value (secrets masked) and where it
    came from: ``environment $NAME``, ``file PATH`` or ``default``."""
    file_values = read_config_file(path, what)
    cls = type(settings)
    rows = []
    for key, value in _flatten(settings.model_dump(mode="json")):
        parts = key.split(".")
        variable = _environment_variable(cls, parts)
        if variable:
            source = f"environment ${variable}"
        elif _has_key(file_values, parts):
            source = f"file {path}"
        else:
            source = "default"
        rows.append(SettingSource(key, _masked(settings, parts, value), source))
    return rows


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _has_key(values: Mapping[str, Any], parts: list[str]) -> bool:
    current: Any = values
    for part in parts:
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def _masked(settings: BaseModel, parts: list[str], value: Any) -> Any:
    current: Any = settings
    for part in parts:
        current = getattr(current, part, None)
    return "**********" if isinstance(current, SecretStr) else value


def _field_parts(cls: type[BaseModel], parts: list[str]) -> list[str]:
    """An error location without pydantic's union tags (``source.folder.path`` ->
    ``source.path``), so that it reads as the key a person writes."""
    kept: list[str] = []
    models: list[type[BaseModel]] = [cls]
    for part in parts:
        field = next((m.model_fields[part] for m in models if part in m.model_fields), None)
        if field is None:
            if kept and any(_tag(m) == part for m in models):
                continue
            kept.append(part)
            models = []
            continue
        kept.append(part)
        models = [
            t for t in _flat_types(field.annotation)
            if isinstance(t, type) and issubclass(t, BaseModel)
        ]
    return kept


def _tag(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("kind")
    return None if field is None else field.default


def _environment_variable(cls: type[BaseModel], parts: list[str]) -> str | None:
    """The environment variable that set ``parts`` (or a block holding it), if one did."""
    config = getattr(cls, "model_config", {})
    prefix = str(config.get("env_prefix") or "")
    delimiter = config.get("env_nested_delimiter") or None
    present = {name.upper(): name for name in os.environ}
    depth = len(parts) if delimiter else 1
    for n in range(1, depth + 1):
        name = (prefix + (delimiter or "").join(parts[:n])).upper()
        if name in present:
            return present[name]
    return None


# -- what a field's annotation says -------------------------------------------------------


def _is_path(field: FieldInfo) -> bool:
    return _file_relative(field) is not None or any(
        t is Path for t in _flat_types(field.annotation)
    )


def _file_relative(field: FieldInfo) -> FileRelative | None:
    return next((m for m in field.metadata if isinstance(m, FileRelative)), None)


def _block_models(annotation: Any, value: Mapping[str, Any]) -> list[type[BaseModel]]:
    """The settings blocks ``value`` may be; for a union tagged by ``kind``, the one named."""
    models = [
        t for t in _flat_types(annotation) if isinstance(t, type) and issubclass(t, BaseModel)
    ]
    kind = value.get("kind")
    tagged = [m for m in models if kind is not None and _tag(m) == kind]
    return tagged or models


def _flat_types(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _flat_types(typing.get_args(annotation)[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _flat_types(arg)
    else:
        yield annotation


__all__ = [
    "FileRelative",
    "SettingSource",
    "YamlSettings",
    "describe_settings",
    "is_url",
    "load_settings",
    "read_config_file",
    "resolve_file_paths",
]
