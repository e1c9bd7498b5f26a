"""Every declared dependency is one we use and can name a reason for: an unused package is a supply-chain risk.

pip-audit cannot run here (no OSV, and PyPI's per-release JSON is not served by
the registry this machine reaches), so this is the check we can keep: each
distribution in pyproject.toml is imported by our code or tests, or is listed
below with why it is declared without an import.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement

from campaigns.settings import PROJECT_ROOT
from tests.project.test_architecture import imported_modules

IMPORT_NAME = {"pyyaml": "yaml", "psycopg": "psycopg", "pydantic-settings": "pydantic_settings",
               "email-validator": "email_validator", "babel": "babel", "scikit-learn": "sklearn"}
DECLARED_WITHOUT_IMPORT = {
    "fastapi": "Prefect's server runs on it; declared only to keep it below 0.151 (see the pin's comment)",
    "tzdata": "the IANA zones zoneinfo reads where the system has no tz database",
    "importlib_metadata": "dask needs it on Python 3.11; declared only to keep it below 10 (see the pin's comment)",
    "import-linter": "checks pyproject.toml's import contracts (tests/project/test_architecture.py runs it in a process of its "
                     "own)",
    "pytest-xdist": "runs the suite in parallel workers (`make test`: pytest -n PYTEST_WORKERS)",
    "mkdocs": "builds the docs site (`make docs`; tests/project/test_docs.py runs `python -m mkdocs build --strict`)",
    "mkdocs-material": "the docs site's theme (mkdocs.yml: theme: material)",
}
CODE = ("src", "flows", "tasks", "operations", "tests", "bench")


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["test"],
                    *project["optional-dependencies"]["docs"]]
    return {Requirement(r).name.lower(): Requirement(r) for r in requirements}


def imported_top_levels() -> set[str]:
    return {name for folder in CODE for path in (PROJECT_ROOT / folder).rglob("*.py")
            for name in imported_modules(path)}


def test_every_dependency_is_used_or_has_a_stated_reason():
    used = imported_top_levels()
    unused = {name for name in declared() if name not in DECLARED_WITHOUT_IMPORT
              and IMPORT_NAME.get(name, name.replace("-", "_")) not in used}
    assert unused == set()
    assert "httpx2" not in declared()


def test_the_pins_that_keep_prefect_working_are_in_place_with_their_reasons():
    text = (PROJECT_ROOT / "pyproject.toml").read_text()
    requirements = declared()
    assert str(requirements["prefect"].specifier) == "==3.8.8"
    assert not requirements["fastapi"].specifier.contains("0.151.0")
    assert not requirements["sqlalchemy"].specifier.contains("2.1.0")
    for name in ("prefect", "fastapi", "sqlalchemy"):
        # The line before each pin says why it is pinned.
        before = text.split(f'"{name}')[0].rstrip().splitlines()[-1]
        assert before.strip().startswith("#") and len(before) > 40, name
    for name, requirement in requirements.items():
        assert requirement.specifier.contains(version(name), prereleases=True), (name, version(name))
    assert re.search(r'"prefect==3\.8\.8"', text)
