"""Allocations at known lines, for the profile tests (pprof, flame graphs)."""

kept = []


def big_strings(n):
    for i in range(n):
        kept.append(str(i) * 5000)  # BIG: line 8


def small_lists(n):
    for _ in range(n):
        kept.append([None] * 100)  # SMALL: line 13


def run(n):
    big_strings(n)
    small_lists(n)


def clear():
    kept.clear()
