"""Not a leak: the first call builds a lookup table; later calls reuse it."""
_table = None


def step():
    global _table
    if _table is None:
        _table = {i: str(i) * 5 for i in range(20000)}
    return len(_table)
