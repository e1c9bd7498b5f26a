"""What the README points at is in the repository (issue 8: 20): a clone has no ../shared."""

from __future__ import annotations

import re

from campaigns.settings import PROJECT_ROOT


def test_every_relative_link_in_the_readme_resolves_inside_the_repository():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    links = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", readme)
             if not target.startswith(("http://", "https://", "mailto:", "#"))]
    assert "docs/design.md" in links
    for link in links:
        target = (PROJECT_ROOT / link).resolve()
        assert target.is_relative_to(PROJECT_ROOT.resolve()), f"{link} is outside the repository"
        assert target.exists(), f"{link} does not exist"
