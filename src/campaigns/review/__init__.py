"""Looking back: the effectiveness review (docs/data-team.md). Run records are ``campaigns.runs``.

``from campaigns.review import run_review`` gives the review as DataFrames: ``review.arms``,
``review.uplift``, ``review.breakdown``, ``review.roll_rates``, ``review.weekly``,
``review.sample_ratio``, ``review.units`` and ``review.findings``.
"""

from __future__ import annotations

_LAZY = {"run_review": "effectiveness", "review_units": "effectiveness", "attach_outcomes": "effectiveness",
         "Review": "effectiveness", "write_review": "report", "render_report": "report",
         "ReviewRules": "config", "load_review_rules": "config"}


def __getattr__(name: str):
    # Lazily, so that importing campaigns.runs.records (every stage run does) loads no pandas statistics.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"campaigns.review.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'campaigns.review' has no attribute {name!r}")


__all__ = sorted(_LAZY)
