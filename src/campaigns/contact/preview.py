"""What a stage would do for a cohort, writing nothing: the ``preview`` command's and ``adhoc --dry-run``'s answer.

It runs the cohort's chunks through the same steps as a real run (``contact.pipeline.prepare_chunk``) and keeps
only counts, a few masked samples and a few suppressions with their reasons.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from campaigns.attempts.log import Tally
from campaigns.contact.adhoc import check_stage_days, describe_days, id_chunks
from campaigns.contact.pipeline import StageRun, prepare_chunk
from campaigns.db.models import AttemptStatus, Stage
from campaigns.ladder.config import Ladder
from campaigns.privacy.subject import mask_name_in


def preview_cohort(engine: Engine, ladder: Ladder, templates, brand, policy, stage: Stage, as_of: date, now,
                   ids: list[str], chunk_size: int, limit: int = 5, *, reveal: bool = False) -> dict:
    """What an ad-hoc run of ``stage`` would do for these accounts, writing nothing: counts by outcome and
    reason, the first ``limit`` messages as rendered (the customer's name masked unless ``reveal``: the caller
    logs the access), and the first ``limit`` suppressions with their reasons."""
    run = StageRun(run_id="preview", stage=stage, as_of=as_of, now=now, adhoc=True)
    outside = check_stage_days(engine, ids, ladder.rule(stage), as_of, "the preview's")
    tally, messages, suppressions, cohort_size = Tally(), [], [], 0
    for bounds, part in id_chunks(ids, chunk_size):
        cohort, planned, _ = prepare_chunk(engine, ladder, templates, brand, run, bounds, policy, part)
        cohort_size += len(cohort)
        names = {} if reveal else dict(zip(cohort["account_id"], cohort["name"]))
        for p in planned:
            status = p.row["status"]
            tally.add("would_send" if status == AttemptStatus.queued.value else status, p.row.get("reason"))
            if p.message is not None and status == AttemptStatus.queued.value and len(messages) < limit:
                messages.append({"account_id": p.row["account_id"], "channel": p.row["channel"],
                                 "template": p.row["template"], "arm": p.row["variant"],
                                 "subject": mask_name_in(p.message["subject"], names.get(p.row["account_id"])),
                                 "text": mask_name_in(p.message["body_text"], names.get(p.row["account_id"]))})
            elif status in (AttemptStatus.suppressed.value, AttemptStatus.deferred.value,
                            AttemptStatus.failed.value) and len(suppressions) < limit:
                suppressions.append({"account_id": p.row["account_id"], "channel": p.row["channel"],
                                     "status": status, "reason": p.row.get("reason")})
    left_out = len(ids) - cohort_size
    return {"stage": stage.value, "as_of": as_of.isoformat(), "accounts": len(ids), "in_cohort": cohort_size,
            "left_out": left_out, "outside_stage_days": len(outside),
            "stage_days": describe_days(ladder.rule(stage).day_bounds), "counts": tally.as_dict(), "messages": messages, "suppressions": suppressions}
