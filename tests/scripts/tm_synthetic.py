"""Hand-made tracemalloc.Snapshot objects for tracemalloc_test: a small pool
of file names (non-ASCII, a lone surrogate, '.pyc', names that differ only
in case or by a trailing space) and line numbers, few distinct sizes, so
that many statistics tie on size and count and the traceback decides the
order; and Python's reference results rendered as bytes lines."""

import random
import tracemalloc

FILES = ["a.py", "b.py", "a.pyc", "dir/c.py", "B.py", "a.py ", "\u00e9t\u00e9.py",
         "z\udcff.py", "<unknown>", "dir/sub/d.py", "\U0001f600.py", "[x].py"]
SIZES = [8, 16, 16, 32, 64, 100, 4096, 100000, 5000000, 3 * 2 ** 30]


def _pool(seed, empty):
    rng = random.Random(seed)
    frames = [(rng.choice(FILES), rng.randrange(0, 6)) for _ in range(30)]
    low = 0 if empty else 1
    tracebacks = []
    for _ in range(50):
        tb = tuple(rng.choice(frames) for _ in range(rng.randrange(low, 5)))
        tracebacks.append(tb)
    return tracebacks


def make(trace_seed, n, pool_seed=7, empty=False, shared=True, limit=4,
         uniform=False):
    """A Snapshot of n traces. shared=False gives every trace its own (equal)
    traceback tuples, as a hand-built snapshot might. uniform=True gives one
    16-byte trace per distinct traceback of the pool (n is ignored), so that
    all statistics tie on size and count and only the traceback orders
    them."""
    pool = _pool(pool_seed, empty)
    if uniform:
        start = trace_seed % 20
        tbs = list(dict.fromkeys(pool[start:start + 30]))
        random.Random(trace_seed).shuffle(tbs)
        return tracemalloc.Snapshot([(0, 16, tb, len(tb)) for tb in tbs], limit)
    rng = random.Random(trace_seed)
    # Each seed uses a different part of the pool, so that keys exist only
    # in one of two snapshots.
    start = trace_seed % 20
    pool = pool[start:start + 30]
    traces = []
    for _ in range(n):
        tb = rng.choice(pool)
        if not shared:
            tb = tuple(tuple(list(f)) for f in tb)
        nframe = rng.choice([len(tb), len(tb) + 3, None])
        traces.append((rng.choice([0, 0, 0, 1, 2]), rng.choice(SIZES), tb, nframe))
    return tracemalloc.Snapshot(traces, limit)


def _enc(text):
    return text.encode("utf-8", "surrogatepass")


def tb_line(traceback):
    return b" <- ".join(_enc(f.filename) + b":%d" % f.lineno for f in traceback)


def stat_lines(snapshot, key_type, cumulative):
    return [tb_line(s.traceback) + b" size=%d count=%d" % (s.size, s.count)
            for s in snapshot.statistics(key_type, cumulative)]


def diff_lines(new, old, key_type, cumulative):
    return [tb_line(d.traceback) + b" size=%d (%+d) count=%d (%+d)"
            % (d.size, d.size_diff, d.count, d.count_diff)
            for d in new.compare_to(old, key_type, cumulative)]


def stat_strs(snapshot, key_type, cumulative):
    return [_enc(str(s)) for s in snapshot.statistics(key_type, cumulative)]


def diff_strs(new, old, key_type, cumulative):
    return [_enc(str(d)) for d in new.compare_to(old, key_type, cumulative)]


def trace_lines(snapshot):
    out = []
    for t in snapshot.traces:
        out.append(b"%d %d %s %s" % (t.domain, t.size, tb_line(t.traceback),
                                      str(t.traceback.total_nframe).encode()))
    return out


def counts(snapshot):
    """(distinct file names, distinct frames, distinct tracebacks)."""
    tbs = {t[2] for t in snapshot.traces._traces}
    frames = {f for tb in tbs for f in tb}
    return len({f[0] for f in frames}), len(frames), len(tbs)


PATTERNS = ["a.py", "*.py", "a.pyc", "?.py", "[ab].py", "*/c.py", "\u00e9*",
            "*", "<*>", "z*", "dir/*", "[!a]*", "*.py ", "B.py", "[[]x].py"]


def filter_specs(seed, count):
    """Random filter lists: ('F', inclusive, pattern, lineno, all_frames,
    domain) or ('D', inclusive, domain) tuples."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        specs = []
        for _ in range(rng.randrange(0, 4)):
            if rng.randrange(4) == 0:
                specs.append(("D", rng.random() < 0.5, rng.randrange(3)))
            else:
                specs.append(("F", rng.random() < 0.5, rng.choice(PATTERNS),
                              rng.choice([None, None, 0, 1, 2, 3]),
                              rng.random() < 0.4,
                              rng.choice([None, None, None, 0, 1])))
        out.append(specs)
    return out


def apply_specs(snapshot, specs):
    filters = []
    for s in specs:
        if s[0] == "D":
            filters.append(tracemalloc.DomainFilter(s[1], s[2]))
        else:
            filters.append(tracemalloc.Filter(s[1], s[2], lineno=s[3],
                                              all_frames=s[4], domain=s[5]))
    return snapshot.filter_traces(filters)


def format_lines(snapshot, limit, most_recent_first):
    return [[_enc(line) for line in t.traceback.format(limit, most_recent_first)]
            for t in snapshot.traces]
