"""The contact ladder as configuration: which accounts each stage selects, and how.

Loaded from ``config/ladder.yaml`` (see settings); validated so that no two stages
can select the same day, which is what keeps an account in one stage a day.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from decimal import Decimal
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campaigns.config_files import load_yaml_model, name_entries
from campaigns.db.models import Channel, Stage

STAGE_ORDER: tuple[Stage, ...] = (Stage.pre_due, Stage.soft_nudge, Stage.plan_offer, Stage.escalation,
                                  Stage.thank_you)


class PlanFee(BaseModel):
    """An optional fee for spreading the payments: a percentage of the balance and/or a fixed amount per currency
    (worked out by ``campaigns.money.plans.plan_fee``)."""

    model_config = ConfigDict(extra="forbid")
    percent: Decimal = Field(default=Decimal(0), ge=0, le=25)
    fixed: dict[str, Decimal] = Field(default_factory=dict)


class PlanRules(BaseModel):
    """How instalment options are made (the ``plans`` block of a stage in the ladder config)."""

    model_config = ConfigDict(extra="forbid")
    counts: list[int] = Field(min_length=1)
    frequency: Literal["monthly", "fortnightly"] = "monthly"
    first_due_in_days: int = Field(default=7, ge=1, le=60, description="from the offer to the first instalment")
    offer_valid_days: int = Field(default=14, ge=1, le=90)
    max_start_days: int = Field(default=30, ge=1, le=365,
                                description="a plan's first instalment at most this many days after its offer")
    min_instalment: dict[str, Decimal] = Field(default_factory=dict, description="per currency; others: none")
    fee: PlanFee = Field(default_factory=PlanFee)
    break_after_days: int = Field(default=10, ge=0, le=90,
                                  description="an instalment this many days unpaid after its date breaks the plan")

    @field_validator("counts")
    @classmethod
    def _counts(cls, counts: list[int]) -> list[int]:
        if any(n < 2 or n > 60 for n in counts):
            raise ValueError("an instalment plan has between 2 and 60 instalments")
        if len(set(counts)) != len(counts):
            raise ValueError("an instalment count is listed twice")
        return sorted(counts)

    @field_validator("min_instalment")
    @classmethod
    def _minimums(cls, minimums: dict[str, Decimal]) -> dict[str, Decimal]:
        return {code.upper(): amount for code, amount in minimums.items()}

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if any(amount < 0 for amount in self.min_instalment.values()):
            raise ValueError("a minimum instalment cannot be negative")
        return self


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
    include_placed: bool = Field(
        default=False, description="thank_you: also thank those who paid in full while placed with the agency "
                                   "(off: the agency holds the relationship)")
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
        if self.include_placed and self.stage is not Stage.thank_you:
            raise ValueError(f"{self.stage.value}: include_placed is for the thank_you stage")
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

    @property
    def day_bounds(self) -> DayRange | None:
        """The days past due the stage is about, as one range (its exact days: from the first to the last);
        None for the thank-you. Its messages are true for these accounts only."""
        if self.on_days_past_due is not None:
            return DayRange(min=min(self.on_days_past_due), max=max(self.on_days_past_due))
        return self.days_past_due

    @property
    def says_overdue(self) -> bool:
        """Its messages tell the customer a payment is late: only true for an account past due."""
        bounds = self.day_bounds
        return bounds is not None and bounds.min >= 1

    def selects(self, days_past_due: int) -> bool:
        if self.paid_in_full_within_days is not None:
            return False
        if self.on_days_past_due is not None:
            return days_past_due in self.on_days_past_due
        assert self.days_past_due is not None
        high = self.days_past_due.max
        return days_past_due >= self.days_past_due.min and (high is None or days_past_due <= high)


def _simple_name(name: str, what: str) -> str:
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"{what} name {name!r} must be letters, digits, - or _")
    return name


class Targeting(BaseModel):
    """Contact only the accounts a message is predicted to help (``campaigns.risk.uplift``): those whose predicted
    uplift is at least ``min_uplift``, or the ``top_share`` of accounts by it. The others are logged
    ``suppressed: low_uplift``; with no ready uplift model, everyone is contacted."""

    model_config = ConfigDict(extra="forbid")
    model: Literal["uplift"] = "uplift"
    min_uplift: float | None = Field(default=None, ge=-1, le=1, description="in cure probability (0.02: 2 points)")
    top_share: float | None = Field(default=None, gt=0, le=1, description="of accounts, by predicted uplift")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.min_uplift is None) == (self.top_share is None):
            raise ValueError("targeting: give exactly one of min_uplift or top_share")
        return self


class Arm(BaseModel):
    """One arm of an experiment: the champion (what runs today) or a challenger."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32)
    share: float = Field(gt=0.0, le=1.0, description="of the accounts assigned (the holdout aside)")
    champion: bool = False
    tone: str | None = Field(default=None, max_length=32,
                             description="template variant for this arm; None: the segment's tone")
    channels: list[Channel] | None = Field(default=None, min_length=1,
                                           description="channel order for this arm; None: the segment's or stage's")
    send_hour: int | None = Field(default=None, ge=8, le=20,
                                  description="not before this hour, the customer's local time (the contact window "
                                              "still applies); None: as soon as allowed")
    targeting: Targeting | None = Field(default=None, description="contact only those a message is predicted to "
                                                                  "help; None: everyone assigned")

    @field_validator("name", "tone")
    @classmethod
    def _simple(cls, value: str | None) -> str | None:
        return None if value is None else _simple_name(value, "arm")


HOLDOUT = "holdout"  # the arm name of accounts held out (logged, not contacted)


class Experiment(BaseModel):
    """Champion and challengers with their shares, plus a holdout that receives nothing.

    The ladder's ``experiment`` is the default of every stage (no dates). An entry
    of ``experiments`` names its stage and runs from ``start`` to ``end`` (both
    included): outside those days the stage is back on the default, and the
    experiment's arms are frozen for the review. ``variants`` is the short form
    of ``arms``: equal shares, the first one champion.
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    stage: Stage | None = None
    start: date | None = None
    end: date | None = None
    variants: list[str] | None = Field(default=None, min_length=1)
    arms: list[Arm] = Field(default_factory=list)
    holdout_share: float = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _arms(self) -> Self:
        _simple_name(self.name, "experiment")
        if self.variants and self.arms:
            raise ValueError(f"experiment {self.name}: give variants or arms, not both")
        if not self.arms:
            names = self.variants or ["control"]
            self.arms = [Arm(name=n, share=1 / len(names), champion=i == 0) for i, n in enumerate(names)]
        self.variants = [a.name for a in self.arms]
        if len(set(self.variants)) != len(self.variants) or HOLDOUT in self.variants:
            raise ValueError(f"experiment {self.name}: arm names must be distinct and not {HOLDOUT!r}")
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"experiment {self.name}: arm shares add up to {total:g}, not 1")
        champions = [a.name for a in self.arms if a.champion]
        if len(champions) > 1:
            raise ValueError(f"experiment {self.name}: one champion, not {', '.join(champions)}")
        if not champions:
            self.arms[0].champion = True
        if (self.start is None) != (self.end is None) or (self.start and self.end and self.end < self.start):
            raise ValueError(f"experiment {self.name}: give start and end, end on or after start")
        return self

    @property
    def champion(self) -> Arm:
        return next(a for a in self.arms if a.champion)

    def arm(self, name: str) -> Arm | None:
        return next((a for a in self.arms if a.name == name), None)

    def active_on(self, day: date) -> bool:
        return self.start is None or self.start <= day <= self.end  # type: ignore[operator]


SEGMENTS = ("first_time_debtor", "on_time_payer", "occasional_late", "chronic_late")


class RiskTone(BaseModel):
    """With a ready risk model: accounts unlikely to pay on their own get this tone (unless their arm sets one)."""

    model_config = ConfigDict(extra="forbid")
    below_pay_chance: float = Field(gt=0.0, lt=1.0, description="a predicted chance of paying below this")
    tone: str = Field(min_length=1, max_length=32, description="the template variant they get")


class SegmentRules(BaseModel):
    """How accounts are segmented from their history, and what each segment changes
    (docs/concepts/outcome-loop.md, "Segments and tone")."""

    model_config = ConfigDict(extra="forbid")
    lookback_days: int = Field(default=365, ge=30, le=3650, description="history read for late episodes")
    chronic_from: int = Field(default=3, ge=2, description="late episodes in the lookback that make chronic_late")
    high_value_balance: dict[str, float] = Field(default_factory=dict,
                                                 description="per currency: balance from which the tier is high")
    long_tenure_days: int = Field(default=730, ge=1, description="accounts this old are long-tenure")
    tone: dict[str, str | None] = Field(default_factory=dict, description="segment -> template variant")
    channels: dict[str, list[Channel]] = Field(default_factory=dict, description="segment -> channel order")
    risk_tone: RiskTone | None = Field(default=None, description="tone by the risk model's score, when one is ready")

    @model_validator(mode="after")
    def _known(self) -> Self:
        for field in ("tone", "channels"):
            unknown = set(getattr(self, field)) - set(SEGMENTS)
            if unknown:
                raise ValueError(f"segments.{field}: unknown segment {', '.join(sorted(unknown))} "
                                 f"(known: {', '.join(SEGMENTS)})")
        return self


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


SEGMENT_NAMES = ("first_time_debtor", "on_time_payer", "occasional_late", "chronic_late")


class DeferralRules(BaseModel):
    """When a customer may ask for more time on their page: a new date for what is due now, which pauses every
    stage until it like a promise and breaks like one (the day after, unpaid)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    days_past_due: DayRange = Field(default_factory=lambda: DayRange(min=-3, max=45),
                                     description="who may ask (days past due, the pre-due days included)")
    longest_days: int = Field(default=14, ge=1, le=90, description="the new date at most this many days ahead")
    once_in_months: int = Field(default=6, ge=0, le=60,
                                description="at most one deferral per account in this many months (0: no limit)")
    segments: list[str] = Field(default_factory=list, description="segments that may ask; empty: every segment")

    @field_validator("segments")
    @classmethod
    def _known_segments(cls, segments: list[str]) -> list[str]:
        unknown = [s for s in segments if s not in SEGMENT_NAMES]
        if unknown:
            raise ValueError(f"unknown segment(s) {', '.join(unknown)}; one of {', '.join(SEGMENT_NAMES)}")
        return segments


class Ladder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment: Experiment
    experiments: list[Experiment] = Field(default_factory=list)
    segments: SegmentRules = Field(default_factory=SegmentRules)
    stages: dict[Stage, StageRule]
    promises: PromiseRules = Field(default_factory=PromiseRules)
    deferral: DeferralRules = Field(default_factory=DeferralRules)
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

    @model_validator(mode="after")
    def _experiments(self) -> Self:
        if self.experiment.stage is not None or self.experiment.start is not None:
            raise ValueError("experiment (the default of every stage) has no stage, start or end; "
                             "dated experiments go under experiments")
        names = [self.experiment.name] + [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError("experiments: every experiment needs its own name (the name seeds the assignment)")
        for e in self.experiments:
            if e.stage is None or e.start is None:
                raise ValueError(f"experiments: {e.name} needs a stage, a start and an end")
            if e.stage not in self.stages:
                raise ValueError(f"experiments: {e.name} is for stage {e.stage.value}, which is not configured")
            if not self.rule(e.stage).holdout and e.holdout_share:
                raise ValueError(f"experiments: {e.name}: stage {e.stage.value} holds nobody out (holdout: false)")
        for a in self.experiments:
            for b in self.experiments:
                if a is not b and a.stage == b.stage and a.start <= b.end and b.start <= a.end:  # type: ignore[operator]
                    raise ValueError(f"experiments: {a.name} and {b.name} overlap on stage {a.stage.value}")
        return self

    def experiment_for(self, stage: Stage | str, day: date) -> Experiment:
        """The experiment a stage runs on a day: its own while it is running, else the ladder's default."""
        stage = Stage(stage)
        return next((e for e in self.experiments if e.stage is stage and e.active_on(day)), self.experiment)

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
