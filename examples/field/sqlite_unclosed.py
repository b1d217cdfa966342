"""Opens a connection to an on-disk database per call and keeps it in a pool
that is never drained or closed."""
import os
import sqlite3
import tempfile

_path = os.path.join(tempfile.mkdtemp(), "app.db")
with sqlite3.connect(_path) as c:
    c.execute("create table if not exists t (x)")
_pool = []


def step():
    conn = sqlite3.connect(_path)
    conn.execute("select count(*) from t").fetchone()
    _pool.append(conn)
