"""The review as files: Parquet for the data team, one HTML page for a collections manager.

The page opens without a network: Plotly's JavaScript is embedded once, the
charts are Plotly figures (recovery and cure by stage and arm with their 95%
intervals, the roll-rate matrix, a weekly trend once there are two weeks), and the
findings come first.
It holds ids and counts only, never a name, an address or a message.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from campaigns.ladder.config import HOLDOUT
from campaigns.files import ensure_private_directory, open_private
from campaigns.review.effectiveness import SATISFACTION_DAYS, Review, bucket_labels

CHART_IDS = ("cure-by-arm", "recovery-by-arm", "roll-rates", "weekly-trend")


def _percent(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 100:.1f}%"


def _points(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 100:+.1f}"


def _bars(arms: pd.DataFrame, rate: str, title: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    for variant, rows in arms.groupby("variant", sort=True):
        rows = rows.sort_values("stage")
        fig.add_trace(go.Bar(
            name=variant, x=rows["stage"], y=rows[rate],
            error_y={"type": "data", "symmetric": False,
                     "array": (rows[f"{rate.split('_')[0]}_ci_high"] - rows[rate]).fillna(0),
                     "arrayminus": (rows[rate] - rows[f"{rate.split('_')[0]}_ci_low"]).fillna(0)},
            marker_color="#9e9e9e" if variant == HOLDOUT else None,
            hovertemplate="%{x} · " + variant + ": %{y:.1%}<extra></extra>"))
    fig.update_layout(title=title, barmode="group", yaxis_tickformat=".0%", height=380,
                      margin={"l": 50, "r": 20, "t": 50, "b": 40}, legend_title_text="arm")
    return fig


def _roll_rates(rolls: pd.DataFrame, edges: list[int]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    groups = [("contacted", rolls[rolls["variant"] != HOLDOUT]), ("holdout", rolls[rolls["variant"] == HOLDOUT])]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[g for g, _ in groups], horizontal_spacing=0.12)
    for col, (_, part) in enumerate(groups, start=1):
        counts = part.groupby(["from_bucket", "to_bucket"])["accounts"].sum().unstack(fill_value=0)
        order = ["before due", *bucket_labels(edges), "cured"]  # days-past-due order, not alphabetical
        counts = counts.reindex(index=[b for b in order if b in counts.index],
                                columns=[b for b in order if b in counts.columns])
        shares = counts.div(counts.sum(axis=1), axis=0) if not counts.empty else counts
        fig.add_trace(go.Heatmap(z=shares.to_numpy(), x=list(shares.columns), y=list(shares.index), zmin=0, zmax=1,
                                 colorscale="Blues", showscale=col == 2, texttemplate="%{z:.0%}",
                                 hovertemplate="from %{y} to %{x}: %{z:.1%}<extra></extra>"), row=1, col=col)
    fig.update_layout(title="Roll rates: days-past-due bucket at assignment → end of the attribution window",
                      height=380, margin={"l": 60, "r": 20, "t": 70, "b": 40})
    return fig


def _weekly(weekly: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure()
    for (stage, variant), rows in weekly.groupby(["stage", "variant"], sort=True):
        rows = rows.sort_values("week")
        fig.add_trace(go.Scatter(x=[str(w) for w in rows["week"]], y=rows["cure_rate"], mode="lines+markers",
                                 name=f"{stage} · {variant}",
                                 line={"dash": "dot"} if variant == HOLDOUT else None))
    fig.update_layout(title="Cure rate by week of assignment", yaxis_tickformat=".0%", height=360,
                      xaxis_title="week starting", margin={"l": 50, "r": 20, "t": 50, "b": 40})
    # Weeks are labels, not instants: a time axis put sub-millisecond ticks around a single week.
    fig.update_xaxes(type="category")
    return fig


def _qini(curve: list[dict]):
    import plotly.graph_objects as go

    fig = go.Figure()
    shares = [p["share"] for p in curve]
    fig.add_trace(go.Scatter(x=shares, y=[p["model"] for p in curve], mode="lines+markers",
                             name="by predicted uplift"))
    fig.add_trace(go.Scatter(x=shares, y=[p["random"] for p in curve], mode="lines", name="at random",
                             line={"dash": "dot", "color": "#9e9e9e"}))
    fig.update_layout(title="Qini curve: extra cures per contacted account, contacting the top share by predicted "
                            "uplift (held-out accounts)", xaxis_tickformat=".0%", xaxis_title="share contacted",
                      height=380, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return fig


def _weeks(weekly: pd.DataFrame) -> int:
    return 0 if weekly.empty else int(weekly["week"].nunique())


def render_report(review: Review) -> str:
    """The HTML page of a review (self-contained)."""
    figures = []
    if not review.arms.empty:
        currency = review.rules.reporting_currency
        figures = [
            ("cure-by-arm", _bars(review.arms, "cure_rate", "Cure rate by stage and arm (95% Wilson intervals)")),
            ("recovery-by-arm", _bars(review.arms, "recovery_rate",
                                      f"Recovery rate by stage and arm, amounts in {currency} (95% intervals)")),
            ("roll-rates", _roll_rates(review.roll_rates, review.rules.dpd_buckets)),
        ]
        if _weeks(review.weekly) >= 2:  # with one week there is no trend to draw
            figures.append(("weekly-trend", _weekly(review.weekly)))
        if review.qini:
            figures.append(("qini-curve", _qini(review.qini)))
    charts = []
    for n, (chart_id, fig) in enumerate(figures):
        charts.append(fig.to_html(full_html=False, include_plotlyjs=(n == 0), div_id=chart_id,
                                  config={"displaylogo": False, "responsive": True}))
    env = Environment(loader=PackageLoader("campaigns.review", "."), autoescape=select_autoescape(["html", "j2"]))
    env.filters["percent"] = _percent
    env.filters["points"] = _points
    template = env.get_template("report.html.j2")
    return template.render(review=review, charts=charts, warnings=[f for f in review.findings
                                                                    if f.startswith("WARNING")],
                           findings=[f for f in review.findings if not f.startswith("WARNING")],
                           arms=review.arms.to_dict("records"), uplift=review.uplift.to_dict("records"),
                           srm=review.sample_ratio.to_dict("records"), holdout=HOLDOUT,
                           weeks=_weeks(review.weekly), satisfaction=review.satisfaction.to_dict("records"),
                           reasons=review.stated_reasons.to_dict("records"), satisfaction_days=SATISFACTION_DAYS,
                           targeting=review.targeting.to_dict("records"), qini_note=review.qini_note)


def write_review(review: Review, out: Path) -> dict[str, Path]:
    """``out/report.html`` and one Parquet file per table (arms, uplift, breakdown, roll_rates, weekly,
    sample_ratio, satisfaction, stated_reasons, units); the directory is private (0700), as the units name accounts by id."""
    ensure_private_directory(out)
    written = {}
    for name, frame in review.tables().items():
        path = out / f"{name}.parquet"
        with open_private(path, "wb") as handle:
            frame.to_parquet(handle, index=False)
        written[name] = path
    path = out / "report.html"
    with open_private(path, "w", encoding="utf-8") as handle:
        handle.write(render_report(review))
    written["report"] = path
    return written
