"""Imports go one way: flows -> tasks -> campaigns. The domain never imports Prefect."""

from __future__ import annotations

import ast
from pathlib import Path

from campaigns.settings import PROJECT_ROOT

DOMAIN = PROJECT_ROOT / "src" / "campaigns"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_domain_does_not_import_prefect_flows_or_tasks():
    offenders = {}
    for path in DOMAIN.rglob("*.py"):
        if path.parent.name == "cli":  # the entry point wires flows in, lazily, inside commands
            continue
        bad = imported_modules(path) & {"prefect", "flows", "tasks", "operations"}
        if bad:
            offenders[str(path.relative_to(PROJECT_ROOT))] = bad
    assert offenders == {}


def test_cli_imports_flows_only_inside_commands():
    for path in (DOMAIN / "cli").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                top_level.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                top_level.update(a.name.split(".")[0] for a in node.names)
        assert not top_level & {"prefect", "flows", "tasks", "operations"}, path


def test_tasks_do_not_import_flows():
    for path in (PROJECT_ROOT / "tasks").rglob("*.py"):
        assert "flows" not in imported_modules(path), path


def test_flows_and_tasks_do_not_reach_into_operations():
    """``operations`` sets up the server around the flows; the flows never depend on it."""
    for folder in ("flows", "tasks"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            assert "operations" not in imported_modules(path), path


def test_the_import_graph_keeps_its_layers_and_has_no_circle():
    """The contracts in pyproject.toml ([tool.importlinter]): the layers from the CLI down to settings, and no
    circle among any package's modules. A new upward import or circle fails here, naming the import.

    In a process of its own: import-linter configures logging (disabling every logger already made), which would
    silence the logs other tests read."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                           "--config", str(PROJECT_ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout
