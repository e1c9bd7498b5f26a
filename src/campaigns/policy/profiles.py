"""Jurisdiction profiles: the contact window, calendar and caps that apply to a customer."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campaigns.config_files import load_yaml_model, name_entries


class Window(BaseModel):
    """Local times: ``start`` inclusive, ``end`` exclusive."""

    start: time
    end: time

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data):
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return {"start": data[0], "end": data[1]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} is not after its start {self.start}")
        return self

    def contains(self, local: time) -> bool:
        return self.start <= local < self.end


class Jurisdiction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    countries: list[str] = Field(default_factory=list)
    message_window: Window
    call_window: Window
    holidays: str | None = Field(default=None, description="`holidays` library country code")
    no_sunday: bool = False
    max_per_channel_7d: int = Field(ge=0)
    max_messages_per_day: int = Field(ge=0)
    max_call_attempts_7d: int = Field(ge=0)
    quiet_days_after_conversation: int = Field(ge=0)
    max_connected_calls_per_day: int | None = Field(default=None, ge=0)

    @field_validator("holidays")
    @classmethod
    def _known_calendar(cls, value: str | None) -> str | None:
        if value is not None:
            import holidays

            if value not in holidays.list_supported_countries():
                raise ValueError(f"holidays calendar {value!r} is not supported by the holidays library")
        return value

    def window_for(self, channel: str) -> Window:
        return self.call_window if channel == "call" else self.message_window


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_jurisdiction: str
    max_defer_hours: int = Field(default=72, ge=1, le=24 * 14)
    sms_max_segments: int = Field(default=4, ge=1, le=10)
    jurisdictions: dict[str, Jurisdiction]

    @model_validator(mode="before")
    @classmethod
    def _name_profiles(cls, data):
        return name_entries(data, "jurisdictions", "code")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.default_jurisdiction not in self.jurisdictions:
            raise ValueError(f"default_jurisdiction {self.default_jurisdiction!r} is not a listed jurisdiction")
        seen: dict[str, str] = {}
        for code, profile in self.jurisdictions.items():
            for country in profile.countries:
                if country in seen:
                    raise ValueError(f"country {country} is in both {seen[country]} and {code}")
                seen[country] = code
        return self

    def for_country(self, country: str | None) -> Jurisdiction:
        for profile in self.jurisdictions.values():
            if country and country.upper() in profile.countries:
                return profile
        return self.jurisdictions[self.default_jurisdiction]


class PolicyConfigError(ValueError):
    pass


def load_policy(path: Path) -> PolicyConfig:
    """Read and validate the policy file; errors name the file and the problem."""
    return load_yaml_model(path, PolicyConfig, PolicyConfigError, "policy configuration")
