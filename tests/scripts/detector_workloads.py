"""Workloads for leak_detector_test.cc."""
_kept = []


class LeakguardTypeGrowthRecord:
    """Made after the detector's baseline: its type grows in number."""


class LeakguardTypeGrowthControl:
    """As many after the baseline as before (replaced, not added)."""


_records = []
_controls = []


def grow():
    _kept.append(bytes(512 * 1024))  # leak: python_heap


def steady():
    data = [bytes(1000) for _ in range(200)]
    return len(data)


def keep_records(n):
    _records.extend(LeakguardTypeGrowthRecord() for _ in range(n))


def replace_controls(n):
    _controls[:] = [LeakguardTypeGrowthControl() for _ in range(n)]


def reset():
    _kept.clear()
    _records.clear()
    _controls.clear()
