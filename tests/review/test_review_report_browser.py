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
