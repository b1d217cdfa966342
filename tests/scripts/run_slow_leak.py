"""Leaks 2 MiB every 20 ms for about half a second, for the detector in
`leakguard run --detector-interval`."""
import time

kept = []

for _ in range(25):
    kept.append(bytearray(2 * 1024 * 1024))  # line 8
    time.sleep(0.02)
print("leaked", len(kept) * 2, "MiB")
