"""Exceptions for error_test.cc; the line numbers are asserted there."""


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("__str__ exploded")


class AppError(Exception):
    pass


def fail_value():
    raise ValueError("bad value")  # line 14


def fail_nested():
    return fail_value()  # line 18


def fail_bad_str():
    raise BadStr("ignored")


def fail_app():
    raise AppError("custom")
