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

STAGE_ORDER: tuple[Stage, ...] = (Stage.pre_due, Stage.soft_nudge, Stage.plan_offer, Stage.escalation)


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
    every_days: int | None = Field(default=None, ge=1)
    once_per_due_date: bool = False
    channels: list[Channel] = Field(min_length=1)
    holdout: bool = True
    instalment_counts: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if (self.on_days_past_due is None) == (self.days_past_due is None):
            raise ValueError(f"{self.stage.value}: give exactly one of on_days_past_due or days_past_due")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"{self.stage.value}: a channel is listed twice")
        if any(n < 2 for n in self.instalment_counts):
            raise ValueError(f"{self.stage.value}: an instalment plan needs at least 2 instalments")
        return self

    def selects(self, days_past_due: int) -> bool:
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


class Ladder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment: Experiment
    stages: dict[Stage, StageRule]

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


class LadderConfigError(ValueError):
    pass


def load_ladder(path: Path) -> Ladder:
    """Read and validate the ladder file; errors name the file and the problem."""
    return load_yaml_model(path, Ladder, LadderConfigError, "ladder configuration")
