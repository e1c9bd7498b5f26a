"""The review's HTML report as a collections manager opens it: from disk, in Debian's Chromium, with no network.

Every chart must render (Plotly draws SVG), no console error may appear, and the
warnings and findings come first. Screenshots go to ``test-output/screenshots``.
"""

from __future__ import annotations

import pytest

from campaigns.review.report import CHART_IDS, write_review
from campaigns.settings import PROJECT_ROOT
from tests.conftest import debian_chromium
from tests.review.test_review import synthetic_review

pytestmark = pytest.mark.slow
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"


def test_the_report_opens_from_disk_and_draws_every_chart(tmp_path):
    report = write_review(synthetic_review(), tmp_path / "review")["report"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with debian_chromium() as browser:
        # A route that refuses everything not on disk: the page must not need a network.
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        fetched: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (fetched.append(route.request.url), route.abort()))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        for chart in CHART_IDS:
            # A drawn bar, line or heatmap, not merely the chart's empty frame.
            page.wait_for_selector(f"#{chart} svg.main-svg .trace, #{chart} svg.main-svg .hm",
                                   state="attached", timeout=20_000)
            assert page.locator(f"#{chart} .point, #{chart} .js-line, #{chart} .hm image").count() > 0, chart
        assert page.locator("h2").first.inner_text() == "Findings"
        assert page.locator(".findings li").count() >= 2
        assert page.locator("#arms tbody tr").count() >= 6
        assert "holdout" in page.locator("#uplift").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "review-report.png"), full_page=True)
    assert errors == [], errors
    assert fetched == [], f"the report tried to fetch {fetched[:3]}"


def test_a_review_of_one_week_draws_no_trend_and_says_why(tmp_path):
    """Issue 24 item 11: one week drew a 'trend' with sub-millisecond ticks; the cost read 0.0001."""
    from campaigns.review.effectiveness import attach_outcomes, review_units
    from tests.review.test_review import LADDER, RULES, T0, hand_made

    units, payments = hand_made()
    review = review_units(attach_outcomes(units, payments, RULES), T0.date(), T0.date(), RULES, LADDER)
    report = write_review(review, tmp_path / "review")["report"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with debian_chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(report.as_uri())
        page.wait_for_selector("#cure-by-arm svg.main-svg .trace", state="attached", timeout=20_000)
        assert page.locator("#weekly-trend").count() == 0
        assert "there is no trend to draw yet" in page.locator("#no-trend").inner_text()
        text = page.locator("#arms").inner_text()
        assert "message cost per USD 1,000 recovered" in " ".join(text.split()) and "0.0001" not in text
        page.screenshot(path=str(SCREENSHOTS / "review-report-one-week.png"), full_page=True)
    assert errors == [], errors


def test_the_targeting_comparison_and_the_qini_curve_are_drawn(tmp_path):
    """Issue 28: a targeted arm's review shows the comparison with contacting everyone and the uplift model's
    Qini curve (the model's line above random targeting's)."""
    from datetime import timedelta

    from campaigns.review.effectiveness import review_units
    from tests.review.test_review import RULES, T0, TARGETING_LADDER, targeting_units

    review = review_units(targeting_units(), T0.date(), T0.date(), RULES, TARGETING_LADDER,
                          now=T0 + timedelta(days=30))
    review.qini = [{"share": s / 10, "model": round(min(s / 5, 1.0) * 0.12, 4), "random": round(s / 10 * 0.12, 4)}
                   for s in range(11)]
    review.qini_note = "uplift model v3: Qini area +0.0230 over random targeting"
    report = write_review(review, tmp_path / "review")["report"]
    with debian_chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(report.as_uri())
        page.wait_for_selector("#qini-curve svg.main-svg .trace", state="attached", timeout=20_000)
        assert page.locator("#qini-curve .js-line").count() >= 2  # the model, and random targeting
        table = " ".join(page.locator("#targeting").inner_text().split())
        assert "targeted control" in table and "always-valid" in table
        assert "uplift model v3" in page.content()
        assert any("contacting everyone" in t for t in page.locator(".findings li").all_inner_texts())
        page.locator("#targeting-heading").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "review-report-targeting.png"), full_page=True)
    assert errors == [], errors
