"""A script for `leakguard doctor` / `python -m leakguard doctor`."""
import sys

_kept = []


def leak():
    _kept.append(bytearray(4096))  # leak: doctor


def clean():
    return [bytes(64) for _ in range(64)]


if __name__ == "__main__":
    print("prefix", sys.prefix)
    print("leakguard", __import__("leakguard").__version__)
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
