"""The ``campaigns`` command, one module per command group.

This is the entry point, the one part of the package allowed to reach up into
``flows`` (lazily, inside commands): everything else in ``campaigns`` stays free
of Prefect. Errors are one line a person can act on, never a traceback.
"""

from __future__ import annotations

import sys

from campaigns.cli.app import app
# Importing a command group registers its commands, in this order in --help.
from campaigns.cli import database, campaign, adhoc, records, money, review, customers, providers, templates, keys, privacy, ops  # noqa: E402,F401,I001

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
