"""Content rules for templates, checked when templates are loaded (``campaigns templates check``), not at send time.

Every electronic collection template must use the amount, the due date, the pay
link and the opt-out instruction; and a message to a time-barred account must
never mention suing (FDCPA / Reg F 1006.26(b)), so such templates are flagged
and never used for those accounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, TemplateSyntaxError, meta

REQUIRED = {
    "email": {"amount": "the amount", "due_date": "the due date", "pay_url": "how to pay",
              "opt_out_url": "how to opt out"},
    "sms": {"amount": "the amount", "due_date": "the due date", "pay_url": "how to pay",
            "opt_out_keyword": "how to opt out"},
}
# A message that asks for nothing (the thank-you after payment in full) must still say how to opt out.
REQUIRED_AFTER_PAYMENT = {"email": {"opt_out_url": "how to opt out"}, "sms": {"opt_out_keyword": "how to opt out"}}
AFTER_PAYMENT_STAGES = {"thank_you"}
BLOCKS = {"email": {"subject", "text", "html"}, "sms": {"text"}}
LITIGATION = re.compile(
    r"\b(sue|sued|suing|lawsuit|legal action|court|judg(e)?ment|attorney|garnish\w*)\b|起诉|诉讼|法院|法律行动|律师函",
    re.IGNORECASE,
)
NAME = re.compile(r"^(?P<stage>[a-z_]+)/(?P<channel>[a-z]+)\.(?P<locale>[a-z]{2}(-[A-Z]{2})?)(\.(?P<variant>[\w-]+))?\.j2$")


@dataclass(frozen=True)
class TemplateProblem:
    template: str
    problem: str

    def __str__(self) -> str:
        return f"{self.template}: {self.problem}"


def mentions_litigation(text: str) -> bool:
    return LITIGATION.search(text) is not None


def check_templates(root: Path) -> tuple[list[str], list[TemplateProblem], set[str]]:
    """(templates checked, problems, templates that mention suing)."""
    root = Path(root)
    env = Environment(loader=FileSystemLoader(str(root)))
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*.j2"))
    problems: list[TemplateProblem] = []
    litigious: set[str] = set()
    for name in names:
        match = NAME.match(name)
        if not match:
            problems.append(TemplateProblem(name, "name is not <stage>/<channel>.<locale>[.<variant>].j2"))
            continue
        channel = match["channel"]
        source = (root / name).read_text(encoding="utf-8")
        try:
            parsed = env.parse(source)
        except TemplateSyntaxError as exc:
            problems.append(TemplateProblem(name, f"syntax error on line {exc.lineno}: {exc.message}"))
            continue
        used = meta.find_undeclared_variables(parsed)
        blocks = set(env.get_template(name).blocks)
        for block in sorted(BLOCKS.get(channel, set()) - blocks):
            problems.append(TemplateProblem(name, f"has no '{block}' block"))
        required = REQUIRED_AFTER_PAYMENT if match["stage"] in AFTER_PAYMENT_STAGES else REQUIRED
        for variable, meaning in required.get(channel, {}).items():
            if variable not in used:
                problems.append(TemplateProblem(name, f"never states {meaning} ({{{{ {variable} }}}})"))
        if mentions_litigation(source):
            litigious.add(name)
    return names, problems, litigious
