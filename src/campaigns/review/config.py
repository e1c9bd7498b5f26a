"""What the effectiveness review is configured with (``config/review.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from campaigns.config_files import load_yaml_model


class Sequential(BaseModel):
    """Always-valid intervals: how they are tuned and when the findings use them."""

    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="1 minus the confidence of every interval")
    tuned_for_accounts: int = Field(default=2000, ge=10, le=100_000_000,
                                    description="the accounts (both arms) at which the interval is narrowest")
    use: Literal["open", "always", "never"] = Field(
        default="open", description="open: while the experiment runs or an attribution window is open")


class ReviewRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sequential: Sequential = Field(default_factory=Sequential)
    multiple_comparisons: Literal["holm", "bh", "none"] = Field(
        default="holm", description="the correction across each stage's arms and metrics")
    attribution_window_days: int = Field(default=7, ge=1, le=90)
    pre_period_days: int = Field(default=90, ge=1, le=730)
    minimum_detectable_effect: float = Field(default=0.02, gt=0, lt=1)
    reporting_currency: str = Field(default="USD", min_length=3, max_length=3)
    rates_to_reporting: dict[str, float] = Field(default_factory=lambda: {"USD": 1.0})
    message_cost: dict[str, float] = Field(default_factory=dict)
    dpd_buckets: list[int] = Field(default_factory=lambda: [0, 1, 15, 31, 46, 61, 91], min_length=2)
    adhoc_views: list[str] = Field(default_factory=list, description="views an ad-hoc cohort may name")

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.rates_to_reporting.get(self.reporting_currency) != 1.0:
            raise ValueError(f"rates_to_reporting: {self.reporting_currency} (the reporting currency) must be 1.0")
        if any(r <= 0 for r in self.rates_to_reporting.values()):
            raise ValueError("rates_to_reporting: rates are positive")
        if self.dpd_buckets != sorted(set(self.dpd_buckets)):
            raise ValueError("dpd_buckets: increasing lower edges, each once")
        return self


class ReviewConfigError(ValueError):
    pass


def load_review_rules(path: Path) -> ReviewRules:
    return load_yaml_model(path, ReviewRules, ReviewConfigError, "review configuration")
