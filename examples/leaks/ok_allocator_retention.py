"""Not a leak: the first call makes and drops a million small objects; the
allocator keeps some of the memory (RSS stays high) but nothing grows."""
_first = [True]


def step():
    if _first[0]:
        _first[0] = False
        junk = [str(i) for i in range(1_000_000)]
        del junk
    return sum(range(100))
