"""Not a leak: native memory from ctypes malloc, freed in the same call."""
import ctypes

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]
_libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
SIZE = 1 << 20


def step():
    p = _libc.malloc(SIZE)
    _libc.memset(p, 1, SIZE)
    _libc.free(p)
