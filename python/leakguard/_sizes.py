"""Memory sizes as pytest-memray writes them, and bytes for humans."""

import re

_SIZE = re.compile(r"^\s*(\+?\d*\.\d+|\+?\d+)\s*([KMGTP]?B)\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "PB": 1 << 50}


def parse_size(text):
    """parse_size(text) -> int

    ``parse_size("1 MB") == 1048576``, ``parse_size("1.5KB") == 1536``
    (powers of 1024, as pytest-memray); an int is returned as is. Raises
    ValueError for anything else.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.match(str(text))
    if match is None:
        raise ValueError("leakguard: invalid memory size %r (expected e.g. '1 MB', '512 KB')"
                         % (text,))
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_bytes(n):
    """format_bytes(n) -> str: ``"512 B"``, ``"1.5 KiB"``, ``"-2.0 MiB"``."""
    value = float(n)
    if abs(value) < 1024:
        return "%d B" % value
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "GiB":
            break
    return "%.1f %s" % (value, unit)
