"""A script for `leakguard run`: keeps about 8 MB alive at line 9, opens
three descriptors it never closes, echoes its argv and exits with the code
given as its first argument (default 0)."""
import sys

kept_fds = [open(__file__) for _ in range(3)]

def grow():
    return [bytes(800) for _ in range(10_000)]  # line 9: ~8.3 MB kept

KEPT = grow()
print("argv:", sys.argv[1:])
if len(sys.argv) > 1:
    sys.exit(int(sys.argv[1]))
