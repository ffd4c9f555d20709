"""The monitor's configuration (``configs/monitor.yaml``): the store, the model whose
calibration is the reference, the policy whose bands group the categories, and the alert
rules.

Every value can be overridden from the environment: ``MAMMOTRIAGE_MONITOR_<FIELD>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from mammotriage import defaults
from mammotriage.category import CATEGORIES
from mammotriage.settings import FileRelative, YamlSettings, is_url, load_settings

Metric = Literal["psi", "unusable_share", "partial_share", "recall_rate"]


class AlertRule(BaseModel):
    """One alert: ``metric`` above ``above`` for ``weeks`` consecutive weeks, each week
    counting only with at least ``min_exams`` exams.

    - ``psi``: a device's category shares against the model's calibration reference; with
      ``significance``, the chi-square test of those shares must also give p below it (so
      that a small week's noise does not raise it);
    - ``unusable_share``: images of a device that could not be scored;
    - ``partial_share``: a device's exams that lack a standard view;
    - ``recall_rate``: a site's read exams in ``categories`` (first, last) recalled.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    metric: Metric
    above: float = Field(ge=0)
    weeks: int = Field(default=1, ge=1, le=52)
    min_exams: int = Field(default=1, ge=1)
    significance: float | None = Field(default=None, gt=0, lt=1)
    categories: tuple[int, int] | None = None
    #: What the alert means and what to do, for whoever receives it.
    description: str = ""

    @model_validator(mode="after")
    def _fits_metric(self) -> AlertRule:
        if self.metric == "recall_rate":
            if self.categories is None:
                raise ValueError("a recall_rate rule needs categories: [first, last]")
            first, last = self.categories
            if not (CATEGORIES.start <= first <= last <= CATEGORIES.stop - 1):
                raise ValueError(f"categories must be 1-10, first <= last, got {self.categories}")
        elif self.categories is not None:
            raise ValueError(f"categories apply to recall_rate rules only, not {self.metric}")
        if self.significance is not None and self.metric != "psi":
            raise ValueError(f"significance applies to psi rules only, not {self.metric}")
        return self

    @property
    def scope(self) -> Literal["device", "site"]:
        """Devices for the image metrics, sites for reader behaviour."""
        return "site" if self.metric == "recall_rate" else "device"


#: The rules in force when the configuration names none (``configs/monitor.yaml`` repeats
#: them, to be edited).
DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule(
        name="category-drift",
        metric="psi",
        above=0.2,
        weeks=2,
        min_exams=50,
        significance=0.001,
        description="A device's exams no longer spread over the categories as the "
        "calibration's reference did: check the device (a new detector, a software update, "
        "changed processing), then recalibrate it.",
    ),
    AlertRule(
        name="unusable-images",
        metric="unusable_share",
        above=0.05,
        min_exams=20,
        description="More than 5 % of a device's images could not be scored: the reasons "
        "are on the monitoring page.",
    ),
    AlertRule(
        name="partial-exams",
        metric="partial_share",
        above=0.10,
        min_exams=20,
        description="More than 10 % of a device's exams lack a standard view.",
    ),
    AlertRule(
        name="recall-in-single-read-band",
        metric="recall_rate",
        categories=(1, 5),
        above=0.03,
        min_exams=50,
        description="Readers recall more than 3 % of the exams in categories 1-5, which "
        "the evaluation found nearly free of cancer: the model or the readers changed.",
    ),
)


class MonitorSettings(YamlSettings):
    """Settings of ``mammotriage monitor`` and of the service's monitoring view."""

    model_config = SettingsConfigDict(env_prefix="MAMMOTRIAGE_MONITOR_", extra="forbid")

    #: SQLite file path or database URL: the worker's store.
    database: Annotated[str, FileRelative(unless=is_url)] = "var/mammotriage.sqlite"
    #: The model whose scores are monitored and whose calibration is the reference; default:
    #: the packaged demonstration model.
    model: Path = Field(default_factory=defaults.model_path)
    #: The triage policy: its reading bands group categories in the reader and outcome tables.
    policy: Path = Field(default_factory=defaults.policy_path)
    #: Weeks shown when no start date is given.
    weeks: int = Field(default=12, ge=1, le=520)
    #: How long the service reuses a computed report (the page and /metrics).
    refresh_seconds: int = Field(default=300, ge=0)
    alerts: tuple[AlertRule, ...] = DEFAULT_RULES

    @model_validator(mode="after")
    def _unique_names(self) -> MonitorSettings:
        names = [rule.name for rule in self.alerts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"alert rule names must be unique: {', '.join(twice)}")
        return self


def load_monitor_settings(path: Path | None, **overrides: object) -> MonitorSettings:
    """The monitor's settings from ``path`` (optional) and the environment.

    Raises
    ------
    ConfigError
        If the file cannot be read or a value is wrong (naming the field).
    """
    return load_settings(MonitorSettings, path, "monitor", **overrides)


__all__ = ["DEFAULT_RULES", "AlertRule", "MonitorSettings", "load_monitor_settings"]
