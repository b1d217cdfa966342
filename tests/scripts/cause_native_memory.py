"""Cause native_memory: C memory from libc's malloc through ctypes, touched
and never freed; the Python heap does not grow."""
import ctypes

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
_blocks = []
SIZE = 8 * 1024 * 1024


def run():
    p = _libc.malloc(SIZE)  # leak: native_memory
    _libc.memset(p, 1, SIZE)
    _blocks.append(p)  # only the address (an int) stays in Python
