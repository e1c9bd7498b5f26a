"""``python -m campaigns.cli``: the same as the ``campaigns`` command."""

from campaigns.cli import app

app()
