"""MkDocs hook: the reference pages are made from the code, so they cannot drift from it.

A page says ``<!-- reference: settings -->`` (or ``cli``, ``reason-codes``) where its generated part goes:

- settings: every field of ``campaigns.settings.Settings``, its environment variable, default and description;
- cli: every command of the ``campaigns`` Typer app, its help, arguments and options;
- reason-codes: ``campaigns.attempts.reasons``: each status, and each reason with its status and meaning.

``tests/project/test_docs.py`` imports this file to check that every setting and command is in the pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MARKER = re.compile(r"<!-- reference: ([a-z-]+) -->")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(value: Any, root: Path) -> str:
    if value is None or value == "" or value == {}:
        return "—"
    text = str(value)
    if str(root) in text:
        text = text.replace(str(root), "<project>")
    return f"`{text}`"


def settings_markdown() -> str:
    from campaigns.settings import PROJECT_ROOT, Settings

    lines = ["| variable | default | what |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        shown = "—" if info.repr is False and info.default else _default(info.default, PROJECT_ROOT)
        lines.append(f"| `CAMPAIGNS_{name.upper()}` | {shown} | {_cell(info.description or '')} |")
    return "\n".join(lines)


def commands() -> Iterator[tuple[str, Any]]:
    """Every command of ``campaigns`` with its full name (``campaigns db upgrade``), groups before their commands."""
    import typer

    from campaigns.cli import app

    def walk(command, path: list[str]):
        yield " ".join(path), command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), ["campaigns"])


def _param_row(param) -> str:
    if param.param_type_name == "argument":
        name = f"`{(param.metavar or param.name).upper()}`" + (" …" if param.nargs == -1 else "")
    else:
        name = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
    default = param.default
    shown = "—" if default in (None, (), [], False) or callable(default) else f"`{getattr(default, 'value', default)}`"
    return f"| {name} | {'yes' if param.required else ''} | {shown} | {_cell(getattr(param, 'help', '') or '')} |"


def cli_markdown() -> str:
    out = []
    for name, command in commands():
        if name == "campaigns":
            continue
        depth = name.count(" ")
        out.append(f"{'#' * min(depth + 1, 4)} `{name}`\n")
        help_text = (command.help or "").strip()
        if help_text:
            out.append(help_text.replace("\b\n", "") + "\n")
        params = [p for p in command.params if p.name != "help"]
        if params:
            out.append("| argument or option | required | default | what |\n|---|---|---|---|")
            out.extend(_param_row(p) for p in params)
            out.append("")
    return "\n".join(out)


def reason_codes_markdown() -> str:
    from campaigns.attempts.reasons import MEANING, STATUS_MEANING

    lines = ["## Statuses", "", "| status | meaning |", "|---|---|"]
    lines += [f"| `{status}` | {_cell(meaning)} |" for status, meaning in STATUS_MEANING.items()]
    lines += ["", "## Reasons", "", "| reason | status | meaning |", "|---|---|---|"]
    lines += [f"| `{code.value}` | {status} | {_cell(meaning)} |" for code, (status, meaning) in MEANING.items()]
    return "\n".join(lines)


GENERATORS = {"settings": settings_markdown, "cli": cli_markdown, "reason-codes": reason_codes_markdown}


def render(markdown: str) -> str:
    def fill(match: re.Match) -> str:
        if match.group(1) not in GENERATORS:
            raise ValueError(f"unknown reference {match.group(1)!r} (one of {', '.join(GENERATORS)})")
        return GENERATORS[match.group(1)]()

    return MARKER.sub(fill, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # MkDocs' hook
    return render(markdown)
