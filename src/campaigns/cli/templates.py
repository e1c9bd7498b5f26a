"""Commands for message templates: ``templates check``."""

from __future__ import annotations

import typer

from campaigns.cli.app import app, err, friendly_errors, out, wired_services

templates_app = typer.Typer(help="Message templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")


@templates_app.command("check")
@friendly_errors
def templates_check_command() -> None:
    """Check every template: blocks, amount, due date, pay link, opt-out, every money figure stated right
    (on rendered samples); flag any that mention suing."""
    from campaigns.contact.template_figures_check import check_template_rules

    s = wired_services()
    names, problems, litigious = check_template_rules(s.templates, s.ladder, s.brand)
    for problem in problems:
        err.print(str(problem), markup=False, highlight=False)
    for template in sorted(litigious):  # template paths, e.g. soft_nudge/email.en-US.j2
        out.print(f"{template}: mentions legal action: never used for time-barred accounts", highlight=False)
    out.print(f"{len(names)} template(s) checked, {len(problems)} problem(s)", highlight=False)
    if problems:
        raise typer.Exit(1)
