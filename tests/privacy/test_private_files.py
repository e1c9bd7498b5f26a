"""Files that hold personal data are readable by their owner only, whatever the umask (issue 8: 7)."""

from __future__ import annotations

import os
import stat
from datetime import date

import pytest
from sqlalchemy import text

from campaigns.db.engine import make_engine, prepare_sqlite_file
from campaigns.portfolio.demo import DemoSpec, generate_portfolio, write_demo_file


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_demo_portfolio_file_is_private(tmp_path, open_umask):
    path = write_demo_file(generate_portfolio(date(2026, 11, 22), DemoSpec(accounts=5)), tmp_path / "var" / "demo" / "p.csv")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    os.chmod(path, 0o644)  # as an earlier version left it
    write_demo_file(generate_portfolio(date(2026, 11, 22), DemoSpec(accounts=5)), path)
    assert mode(path) == 0o600


def test_the_sqlite_database_and_its_journal_files_are_private(tmp_path, open_umask):
    data_dir = tmp_path / "var"
    url = f"sqlite:///{data_dir / 'campaigns.db'}"
    prepare_sqlite_file(url, create=True, data_dir=data_dir)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("create table t (x text)"))
        conn.execute(text("insert into t values ('x')"))
        wal = [p for p in data_dir.iterdir() if p.name.endswith(("-wal", "-shm"))]
        assert wal and all(mode(p) == 0o600 for p in wal)
    engine.dispose()
    assert mode(data_dir / "campaigns.db") == 0o600 and mode(data_dir) == 0o700
    os.chmod(data_dir / "campaigns.db", 0o644)
    prepare_sqlite_file(url, create=False)
    assert mode(data_dir / "campaigns.db") == 0o600
