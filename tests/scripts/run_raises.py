"""A script that raises, for `leakguard run`'s error path."""


def divide(a, b):
    return a / b  # line 5


print("before the error")
divide(1, 0)
