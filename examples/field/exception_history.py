"""An error reporter that keeps the last errors "for the dashboard", with
their tracebacks (and through them every frame's locals)."""
_errors = []


def _work(n):
    payload = [n] * 50
    raise ValueError("bad request %d" % len(payload))


def step():
    try:
        _work(len(_errors))
    except ValueError as e:
        _errors.append(e)
