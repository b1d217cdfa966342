"""closure_capture: a handler table of lambdas, each capturing a big list."""
handlers = {}
_n = [0]


def step():
    _n[0] += 1
    rows = [str(i) for i in range(50)]
    handlers["job-%d" % _n[0]] = lambda: rows[0]
