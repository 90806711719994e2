"""The PostgreSQL fixture itself: a real server answers on loopback, and survives a stop/start."""

from __future__ import annotations

import sqlalchemy as sa


def test_postgres_database_is_real_and_writable(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (k text primary key)"))
        conn.execute(sa.text("INSERT INTO t VALUES ('a')"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT k FROM t")).scalar_one() == "a"
        assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
    engine.dispose()
