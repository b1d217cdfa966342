"""native_memory: anonymous mmap regions kept alive; tracemalloc does not see
mapped memory."""
import mmap

_maps = []


def step():
    m = mmap.mmap(-1, 1 << 20)
    m.write(b"\x01" * (1 << 20))
    _maps.append(m)
