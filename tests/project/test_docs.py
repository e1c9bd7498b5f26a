"""The README and the docs site: what they point at exists, the site builds strictly, and the reference pages (made
from the code by docs/hooks/reference.py) name every setting and command (issue 25)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns.settings import PROJECT_ROOT, Settings

DOCS = PROJECT_ROOT / "docs"


def _reference():
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(name: str) -> str:
    return _reference().render((DOCS / "reference" / name).read_text(encoding="utf-8"))


def test_every_relative_link_in_the_readme_resolves_inside_the_repository():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    links = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", readme)
             if not target.startswith(("http://", "https://", "mailto:", "#"))]
    assert "docs/design.md" in links
    for link in links:
        target = (PROJECT_ROOT / link).resolve()
        assert target.is_relative_to(PROJECT_ROOT.resolve()), f"{link} is outside the repository"
        assert target.exists(), f"{link} does not exist"


def test_the_readme_is_short_and_keeps_its_two_commands():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    block = readme.split("## Start here", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in block.strip().splitlines()] == [["make", "demo"], ["make", "test"]]


def test_the_settings_reference_names_every_setting_with_its_description():
    page = _page("settings.md")
    for name, info in Settings.model_fields.items():
        assert info.description, f"{name} has no description (settings.py: Field(description=...))"
        assert f"`CAMPAIGNS_{name.upper()}`" in page, name


def test_the_command_reference_names_every_command_and_option():
    reference = _reference()
    page = _page("cli.md")
    commands = list(reference.commands())
    assert len(commands) > 40
    for name, command in commands:
        if name != "campaigns":
            assert f"`{name}`" in page, name
        for option in (o for p in command.params if p.param_type_name == "option" for o in p.opts):
            if option != "--help":
                assert f"`{option}`" in page, f"{name} {option}"


def test_the_reason_code_reference_lists_every_code():
    from campaigns.attempts.reasons import Reason

    page = _page("reason-codes.md")
    assert all(f"| `{code.value}` |" in page for code in Reason)


def test_a_page_cannot_ask_for_a_reference_that_does_not_exist():
    with pytest.raises(ValueError, match="unknown reference 'nothing'"):
        _reference().render("<!-- reference: nothing -->")


def test_the_docs_site_builds_strictly(tmp_path: Path):
    """What `make docs` and CI run: a broken link or anchor, or a page left out of the nav, fails it."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "settings" / "index.html").exists()
