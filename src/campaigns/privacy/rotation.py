"""Re-seal stored values under the primary key, chunk by chunk, while stage runs go on.

One pass serves three needs: a key rotation (values sealed with an older key),
the first sealing of a database written before sealing existed (plain values),
and blind indexes left empty. Each chunk is its own transaction and its update
only lands where the value is still the one read (a stage run that rewrote it
meanwhile wrote it under the primary key already), so the pass can stop anywhere
and be run again: it picks up what is left.

The values are read and written as raw text here (no ``Sealed`` type), so a
re-sealed value is written exactly as sealed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, Text, and_, bindparam, column, func, or_, select, table, update
from sqlalchemy.engine import Connection

from campaigns.sealing.keys import KeyRing
from campaigns.privacy.lookup import email_index, phone_index
from campaigns.sealing.seal import PREFIX, Sealed, is_sealed, key_id_of, open_sealed, ring_for, seal

SEALING_REVISION = "0010"  # the migration that brought sealed columns (db.migrations.versions)


@dataclass(frozen=True)
class SealedTable:
    name: str
    key: str
    columns: dict[str, str]  # column -> the field its values are sealed for
    indexes: dict[str, tuple[str, Callable]] = field(default_factory=dict)  # index column -> (source, maker)


def sealed_tables(bind=None) -> list[SealedTable]:
    """Every table with sealed columns, from the models (a new sealed column is covered without a change here);
    with ``bind``, only those its database has (a schema between migrations lacks the newer ones)."""
    from sqlalchemy import inspect

    from campaigns.db.models import Base

    present = set(inspect(bind).get_table_names()) if bind is not None else None
    found = []
    for t in Base.metadata.sorted_tables:
        if present is not None and t.name not in present:
            continue
        columns = {c.name: c.type.field for c in t.columns if isinstance(c.type, Sealed)}
        if columns:
            (key,) = [c.name for c in t.primary_key.columns]
            indexes = ({"email_index": ("email", email_index), "phone_index": ("phone", phone_index)}
                       if t.name == "customers" else {})
            found.append(SealedTable(t.name, key, columns, indexes))
    return found


def _raw(spec: SealedTable):
    return table(spec.name, column(spec.key), *(column(c, Text) for c in (*spec.columns, *spec.indexes)))


def _needs_work(raw, spec: SealedTable, primary: str | None):
    """Rows with a value not sealed by ``primary`` (None: with a plain value), or a blind index left empty."""
    prefix = f"{PREFIX}{primary}$" if primary else PREFIX
    stale = [and_(raw.c[c].is_not(None), func.substr(raw.c[c], 1, len(prefix)) != prefix) for c in spec.columns]
    unindexed = [and_(raw.c[source].is_not(None), raw.c[index].is_(None))
                 for index, (source, _) in spec.indexes.items()]
    return or_(*stale, *unindexed)


@dataclass
class Resealed:
    by_table: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_table.values())

    def add(self, table_name: str, n: int) -> None:
        self.by_table[table_name] = self.by_table.get(table_name, 0) + n


def anything_to_seal(conn: Connection) -> bool:
    """Whether any stored value is still plain, or a blind index empty (no keys needed to tell)."""
    for spec in sealed_tables(conn):
        raw = _raw(spec)
        if conn.execute(select(raw.c[spec.key]).where(_needs_work(raw, spec, None)).limit(1)).first():
            return True
    return False


def reseal(engine: Engine, ring: KeyRing | None = None, chunk_size: int = 1000,
           on_chunk: Callable[[str, int], None] | None = None, plain_only: bool = False) -> Resealed:
    """Seal every stored value under ``ring``'s primary key (default: the engine's keys) and fill missing blind
    indexes; with ``plain_only``, leave values sealed with older keys as they are. Returns the rows rewritten
    per table."""
    ring = ring or ring_for(engine.dialect)
    done = Resealed()
    with engine.connect() as conn:
        specs = sealed_tables(conn)
    for spec in specs:
        raw = _raw(spec)
        after = None
        while True:
            stmt = (select(raw).where(_needs_work(raw, spec, None if plain_only else ring.primary))
                    .order_by(raw.c[spec.key]).limit(chunk_size))
            if after is not None:
                stmt = stmt.where(raw.c[spec.key] > after)
            with engine.begin() as conn:
                rows = conn.execute(stmt).mappings().all()
                if not rows:
                    break
                _rewrite(conn, raw, spec, ring, rows, plain_only)
            after = rows[-1][spec.key]
            done.add(spec.name, len(rows))
            if on_chunk:
                on_chunk(spec.name, len(rows))
    return done


def _rewrite(conn: Connection, raw, spec: SealedTable, ring: KeyRing, rows, plain_only: bool) -> None:
    changes = []
    for row in rows:
        new = {}
        plain = {c: (open_sealed(ring, row[c], f) if row[c] is not None else None) for c, f in spec.columns.items()}
        for c, f in spec.columns.items():
            if row[c] is not None and key_id_of(row[c]) != ring.primary and not (plain_only and is_sealed(row[c])):
                new[c] = seal(ring, plain[c], f)
        for index, (source, make) in spec.indexes.items():
            wanted = make(ring, plain[source])
            if row[index] != wanted:
                new[index] = wanted
        if new:
            changes.append((row, new))
    # One statement per set of changed columns; each lands only where the row still holds what was read.
    by_shape: dict[tuple[str, ...], list[dict]] = {}
    for row, new in changes:
        shape = tuple(sorted(new))
        params = {"_key": row[spec.key], **{f"_new_{c}": v for c, v in new.items()},
                  **{f"_old_{c}": row[c] for c in shape if c in spec.columns}}
        by_shape.setdefault(shape, []).append(params)
    for shape, params in by_shape.items():
        guards = [raw.c[c] == bindparam(f"_old_{c}") for c in shape if c in spec.columns]
        stmt = (update(raw).where(raw.c[spec.key] == bindparam("_key"), *guards)
                .values({c: bindparam(f"_new_{c}") for c in shape}))
        conn.execute(stmt, params)


def key_census(conn: Connection, ring: KeyRing | None = None) -> dict[str, dict[str, int]]:
    """How many stored values each key of the ring seals, per table; ``plain``: not sealed yet; ``other``:
    sealed with a key the ring does not have."""
    ring = ring or ring_for(conn.dialect)
    census: dict[str, dict[str, int]] = {}
    heads = {kid: f"{PREFIX}{kid}$" for kid in ring.data_keys}
    for spec in sealed_tables(conn):
        raw = _raw(spec)
        counts: dict[str, int] = {}
        for c in spec.columns:
            row = conn.execute(select(
                func.count(raw.c[c]),
                func.count().filter(func.substr(raw.c[c], 1, len(PREFIX)) != PREFIX),
                *(func.count().filter(func.substr(raw.c[c], 1, len(h)) == h) for h in heads.values()),
            )).one()
            total, plain, *by_key = row
            for label, n in (("plain", plain), *zip(heads, by_key), ("other", total - plain - sum(by_key))):
                counts[label] = counts.get(label, 0) + n
        census[spec.name] = {k: v for k, v in counts.items() if v}
    return census


def unseal_all(conn: Connection, ring: KeyRing | None = None) -> int:
    """Write every sealed value back as plain text (only to downgrade the schema below sealing)."""
    ring = ring or ring_for(conn.dialect)
    n = 0
    for spec in sealed_tables(conn):
        raw = _raw(spec)
        rows = conn.execute(select(raw.c[spec.key], *(raw.c[c] for c in spec.columns))).mappings().all()
        for row in rows:
            plain = {c: open_sealed(ring, row[c], f) for c, f in spec.columns.items() if row[c] is not None}
            if plain:
                conn.execute(update(raw).where(raw.c[spec.key] == row[spec.key]).values(plain))
                n += 1
    return n


@dataclass
class Rotation:
    """What ``rotate_keys`` did: the key new values are sealed with, whether it was made now, rows rewritten."""

    primary: str
    new_key: bool
    resealed: Resealed
    left: dict[str, dict[str, int]]  # values still not under the primary after the passes (a concurrent writer)
    source: str


def rotate_keys(engine: Engine, settings, chunk_size: int = 1000, passes: int = 3,
                on_chunk: Callable[[str, int], None] | None = None) -> Rotation:
    """Seal every stored value with a new key, chunk by chunk, resumable.

    With the key file: a new key is added to it as the primary (the old ones stay, to open what is not
    re-sealed yet), unless values are still sealed with an older key: then the unfinished rotation goes
    on. With keys from the environment nothing can be written: put the new key first in
    ``CAMPAIGNS_DATA_KEYS`` (the old ones after it) and this re-seals under it.

    Stage runs may go on meanwhile: a run that had the old keys writes under the old primary until it reads
    the key file again, so the pass is repeated (``passes``) while values under other keys appear.
    """
    from campaigns.sealing.keys import load_keys, new_key, write_key_file
    from campaigns.sealing.seal import use_keys

    ring = load_keys(settings)
    with engine.connect() as conn:
        census = key_census(conn, ring)
    unfinished = any(n for counts in census.values() for label, n in counts.items() if label != ring.primary)
    made = False
    if ring.file is not None and not unfinished:
        taken = set(ring.data_keys)
        number = len(taken) + 1
        while f"k{number}" in taken:
            number += 1
        ring = ring.with_primary(f"k{number}", new_key())
        # The file first: a key that sealed anything is never only in memory.
        write_key_file(ring.file, ring)
        made = True
    use_keys(engine, ring)
    done = Resealed()
    for _ in range(passes):
        step = reseal(engine, ring, chunk_size=chunk_size, on_chunk=on_chunk)
        for name, n in step.by_table.items():
            done.add(name, n)
        if not step.total:
            break
    with engine.connect() as conn:
        census = key_census(conn, ring)
    left = {t: {k: n for k, n in counts.items() if k != ring.primary} for t, counts in census.items()}
    return Rotation(ring.primary, made, done, {t: c for t, c in left.items() if c}, ring.source)


def retire_key(engine: Engine, settings, key_id: str):
    """Take ``key_id`` out of the key file once no stored value is sealed with it (else ``KeyProblem``)."""
    from campaigns.sealing.keys import KeyProblem, KeyRing, load_keys, write_key_file

    ring = load_keys(settings)
    if key_id not in ring.data_keys:
        raise KeyProblem(f"there is no data key {key_id!r} (keys: {', '.join(sorted(ring.data_keys))})")
    if key_id == ring.primary:
        raise KeyProblem(f"{key_id!r} seals new values: rotate to a new key first (campaigns keys rotate)")
    if ring.file is None:
        raise KeyProblem(f"the keys come from the environment: take {key_id!r} out of CAMPAIGNS_DATA_KEYS there")
    with engine.connect() as conn:
        census = key_census(conn, ring)
    still = sum(counts.get(key_id, 0) for counts in census.values())
    if still:
        raise KeyProblem(f"{still} stored values are still sealed with {key_id!r}: run campaigns keys rotate first")
    kept = {k: v for k, v in ring.data_keys.items() if k != key_id}
    return write_key_file(ring.file, KeyRing(kept, ring.primary, ring.index_key, ring.source, ring.file))
