"""Commands for the keys that seal personal data at rest: ``keys init``, ``status``, ``rotate``, ``retire``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.app import app, friendly_errors, migrated_services, out

keys_app = typer.Typer(help="The keys that seal names, emails, phones and messages at rest.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
@friendly_errors
def keys_init() -> None:
    """Make the installation's key file (0600) unless keys are given. Back it up: without it nothing opens."""
    from campaigns.sealing.keys import ensure_keys
    from campaigns.settings import get_settings

    path, made = ensure_keys(get_settings())
    if path is None:
        out.print("the keys come from the environment (CAMPAIGNS_DATA_KEYS, CAMPAIGNS_BLIND_INDEX_KEY): "
                  "no key file is used", highlight=False)
    elif made:
        out.print(f"key file made: {path} (0600). Back it up apart from the database: without it the "
                  "sealed names, emails, phones and messages cannot be read.", highlight=False)
    else:
        out.print(f"key file already there, left as it is: {path}", highlight=False)


@keys_app.command("status")
@friendly_errors
def keys_status() -> None:
    """How many stored values each key seals, per table (plain: stored before sealing, not sealed yet)."""
    from campaigns.privacy.rotation import key_census
    from campaigns.sealing.seal import ring_for

    s = migrated_services()
    ring = ring_for(s.engine.dialect)
    with s.engine.connect() as conn:
        census = key_census(conn, ring)
    labels = [*ring.data_keys, "plain", "other"]
    table = Table(title=f"sealed values by key (new values: {ring.primary}; keys from {ring.source})")
    table.add_column("table")
    for label in labels:
        table.add_column(label + (" (primary)" if label == ring.primary else ""), justify="right")
    for name, counts in census.items():
        table.add_row(name, *(f"{counts.get(label, 0):,}" for label in labels))
    out.print(table)


@keys_app.command("rotate")
@friendly_errors
def keys_rotate(
    chunk_size: Annotated[int, typer.Option(min=1, max=100_000, help="Rows re-sealed per transaction.")] = 1000,
) -> None:
    """Seal every stored value with a new key, chunk by chunk; stage runs may go on. Stopped, run it again:
    it resumes. With keys from the environment, put the new key first in CAMPAIGNS_DATA_KEYS beforehand."""
    from campaigns.privacy.rotation import rotate_keys

    s = migrated_services()
    result = rotate_keys(s.engine, s.settings, chunk_size=chunk_size)
    made = "a new key, added to " + result.source if result.new_key else "from " + result.source
    out.print(f"new values are sealed with key {result.primary} ({made})", highlight=False)
    rewritten = ", ".join(f"{t} {n:,}" for t, n in result.resealed.by_table.items()) or "none"
    out.print(f"rows re-sealed: {rewritten}", highlight=False)
    if result.left:
        left = "; ".join(f"{t}: " + ", ".join(f"{k} {n:,}" for k, n in c.items()) for t, c in result.left.items())
        out.print(f"still under other keys (written meanwhile by runs holding the old keys): {left}. "
                  "Run campaigns keys rotate again once they have finished.", highlight=False)
        raise typer.Exit(1)
    out.print("every stored value is sealed with the new key; older keys can be retired "
              "(campaigns keys retire ID) once every worker has the new one", highlight=False)


@keys_app.command("retire")
@friendly_errors
def keys_retire(key_id: Annotated[str, typer.Argument(help="The id of an old key.")]) -> None:
    """Take an old key out of the key file, once no stored value is sealed with it."""
    from campaigns.privacy.rotation import retire_key

    s = migrated_services()
    path = retire_key(s.engine, s.settings, key_id)
    out.print(f"key {key_id} retired from {path}", highlight=False)
