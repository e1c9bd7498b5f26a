"""The contact ladder as configuration: which accounts each stage selects, and how.

Loaded from ``config/ladder.yaml`` (see settings); validated so that no two stages
can select the same day, which is what keeps an account in one stage a day.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campaigns.config_files import load_yaml_model, name_entries
from campaigns.db.models import Channel, Stage
from campaigns.money.plans import PlanRules

STAGE_ORDER: tuple[Stage, ...] = (Stage.pre_due, Stage.soft_nudge, Stage.plan_offer, Stage.escalation,
                                  Stage.thank_you)


class DayRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int
    max: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"days_past_due max {self.max} is below min {self.min}")
        return self


class StageRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Stage
    on_days_past_due: list[int] | None = None
    days_past_due: DayRange | None = None
    paid_in_full_within_days: int | None = Field(
        default=None, ge=1, le=60, description="thank_you: accounts paid off this many days ago or less")
    every_days: int | None = Field(default=None, ge=1)
    once_per_due_date: bool = False
    channels: list[Channel] = Field(min_length=1)
    holdout: bool = True
    plans: PlanRules | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        selectors = [self.on_days_past_due, self.days_past_due, self.paid_in_full_within_days]
        if sum(s is not None for s in selectors) != 1:
            raise ValueError(f"{self.stage.value}: give exactly one of on_days_past_due, days_past_due or "
                             "paid_in_full_within_days")
        if (self.paid_in_full_within_days is not None) != (self.stage is Stage.thank_you):
            raise ValueError(f"{self.stage.value}: paid_in_full_within_days is the thank_you stage's selector, "
                             "and its only one")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"{self.stage.value}: a channel is listed twice")
        return self

    @property
    def instalment_counts(self) -> list[int]:
        return list(self.plans.counts) if self.plans else []

    @property
    def after_payment(self) -> bool:
        """A stage for accounts paid off (the thank-you), not for money still owed."""
        return self.paid_in_full_within_days is not None

    def selects(self, days_past_due: int) -> bool:
        if self.paid_in_full_within_days is not None:
            return False
        if self.on_days_past_due is not None:
            return days_past_due in self.on_days_past_due
        assert self.days_past_due is not None
        high = self.days_past_due.max
        return days_past_due >= self.days_past_due.min and (high is None or days_past_due <= high)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    variants: list[str] = Field(default_factory=lambda: ["control"], min_length=1)
    holdout_share: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("variants")
    @classmethod
    def _simple_names(cls, variants: list[str]) -> list[str]:
        for v in variants:
            if not v.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"variant name {v!r} must be letters, digits, - or _")
        return variants


class AgencyRules(BaseModel):
    """When an account is placed with a collection agency (``campaigns agency place``, and the daily run)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    enabled: bool = True
    min_days_past_due: int = Field(ge=1)
    min_balance: dict[str, float] = Field(default_factory=dict, description="per currency; others: any balance")


class PromiseRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_days: int = Field(default=30, ge=1, le=180, description="how far ahead a promise may be dated")


class Ladder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment: Experiment
    stages: dict[Stage, StageRule]
    promises: PromiseRules = Field(default_factory=PromiseRules)
    agency: AgencyRules | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_stages(cls, data):
        return name_entries(data, "stages", "stage")

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        # Check a generous span of days: the rules are small, so brute force is clearest.
        for day in range(-400, 4000):
            hits = [s.value for s, rule in self.stages.items() if rule.selects(day)]
            if len(hits) > 1:
                raise ValueError(f"stages {', '.join(hits)} both select day {day} past due")
        return self

    def rule(self, stage: Stage | str) -> StageRule:
        stage = Stage(stage)
        if stage not in self.stages:
            raise KeyError(f"stage {stage.value} is not configured in the ladder")
        return self.stages[stage]

    def ordered_stages(self) -> list[Stage]:
        return [s for s in STAGE_ORDER if s in self.stages]

    @property
    def plan_rules(self) -> PlanRules | None:
        """The rules of the stage that offers plans (the first that has any)."""
        return next((r.plans for r in self.stages.values() if r.plans), None)


class LadderConfigError(ValueError):
    pass


def load_ladder(path: Path) -> Ladder:
    """Read and validate the ladder file; errors name the file and the problem."""
    return load_yaml_model(path, Ladder, LadderConfigError, "ladder configuration")
