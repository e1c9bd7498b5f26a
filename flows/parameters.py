"""The run parameters every deployment shares, typed and described for Prefect's "Run" form.

Prefect builds each deployment's parameter schema from these annotations. A
plain ``date | None`` becomes ``anyOf [date, null]``, which the UI shows as a
property "of type None"; the schema here is the date (or date-time) itself, an
empty field meaning "today" / "the real clock".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema


def _require_offset(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("now needs a UTC offset, e.g. 2026-11-23T09:00:00-05:00 or 2026-11-23T14:00:00Z")
    return value


AsOf = Annotated[
    date | None,
    WithJsonSchema({
        "type": "string", "format": "date",
        "description": "The campaign day, YYYY-MM-DD: who is due, overdue and by how much is decided for this "
                       "date. Leave empty for today in the lender's time zone.",
    }),
]
Now = Annotated[
    datetime | None,
    AfterValidator(_require_offset),
    WithJsonSchema({
        "type": "string", "format": "date-time",
        "description": "Decide as if it were this moment: contact windows, quiet hours and caps are checked "
                       "at this time. ISO 8601 with a UTC offset, e.g. 2026-11-23T09:00:00-05:00 or "
                       "2026-11-23T14:00:00Z. Leave empty for the real clock.",
    }),
]
DryRun = Annotated[
    bool,
    WithJsonSchema({
        "type": "boolean",
        "description": "Preview only: decide and render, but log and send nothing (the artifact shows what would "
                       "be sent).",
    }),
]

# The effectiveness review's days and where its files go.
ReviewDay = Annotated[
    str | None,
    WithJsonSchema({
        "type": "string", "format": "date",
        "description": "YYYY-MM-DD. Leave both days empty for the four weeks of assignments whose attribution "
                       "window has closed.",
    }),
]
OutDir = Annotated[
    str | None,
    WithJsonSchema({
        "type": "string",
        "description": "Directory for report.html and the Parquet files. Empty: DATA_DIR/review/<since>_<until>.",
    }),
]

# How much history the risk model learns from.
TrainingDays = Annotated[
    int,
    Field(ge=28, le=730),
    WithJsonSchema({"type": "integer", "minimum": 28, "maximum": 730,
                    "description": "How many days of assignments (whose attribution window has closed) to learn from."}),
]
