"""Workloads for leak_detector_test.cc."""
_kept = []


def grow():
    _kept.append(bytes(512 * 1024))  # leak: python_heap


def steady():
    data = [bytes(1000) for _ in range(200)]
    return len(data)


def reset():
    _kept.clear()
