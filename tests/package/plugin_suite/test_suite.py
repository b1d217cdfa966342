"""A suite of leaking and healthy tests, run by test_pytest_plugin.py under
`pytest --leakguard` (never collected by the project's own runner)."""
import pytest

_kept = []
_results = {}
_counter = [0]


class Bus:
    def __init__(self):
        self.listeners = []

    def subscribe(self, fn):
        self.listeners.append(fn)


bus = Bus()


class Request:
    def __init__(self):
        self.body = bytearray(1024)

    def on_event(self, event):
        return len(self.body)


@pytest.fixture
def big_table():
    # Set up once per test, before the measured runs: not the test's leak.
    return [bytes(1000) for _ in range(2000)]


@pytest.fixture(scope="module")
def shared_cache():
    return {}


def test_global_state():
    _kept.append(bytearray(10000))  # leak: global_state


def test_unbounded_cache():
    for _ in range(200):
        _counter[0] += 1
        key = _counter[0]
        _results[key] = "result-%08d" % key * 4  # leak: unbounded_cache


def test_listeners():
    for _ in range(50):
        bus.subscribe(Request().on_event)  # leak: listener_accumulation


def test_healthy():
    data = [bytes(100) for _ in range(100)]
    assert len(data) == 100


def test_healthy_with_fixtures(big_table, shared_cache):
    shared_cache.setdefault("n", len(big_table))
    assert shared_cache["n"] == 2000


def test_plain_failure():
    assert 1 + 1 == 3


@pytest.mark.no_leaks(warmup=2, repeat=6)
def test_marked_no_leaks():
    _kept.append(bytearray(10000))  # leak: marked


@pytest.mark.limit_leaks("1 KB")
def test_limit_leaks_exceeded():
    _kept.append(bytearray(20000))  # leak: limited


@pytest.mark.limit_leaks("1 MB")
def test_limit_leaks_within():
    _kept.append(bytearray(20000))


@pytest.mark.limit_memory("1 MB")
def test_limit_memory_exceeded():
    blob = [bytes(1000) for _ in range(8000)]
    assert len(blob) == 8000


@pytest.mark.limit_memory("24 MB")
def test_limit_memory_within():
    blob = [bytes(1000) for _ in range(8000)]
    assert len(blob) == 8000
