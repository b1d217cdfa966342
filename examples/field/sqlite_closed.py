"""Opens, uses and closes a connection to an on-disk database per call."""
import contextlib
import os
import sqlite3
import tempfile

_path = os.path.join(tempfile.mkdtemp(), "app.db")
with sqlite3.connect(_path) as c:
    c.execute("create table if not exists t (x)")


def step():
    with contextlib.closing(sqlite3.connect(_path)) as conn:
        conn.execute("insert into t values (1)")
        conn.commit()
        conn.execute("select count(*) from t").fetchone()
