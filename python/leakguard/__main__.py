"""``python -m leakguard``: the ``leakguard`` command.

``python -m leakguard doctor app.py:handle`` and ``leakguard doctor
app.py:handle`` are the same program: this module replaces the current
process with the ``leakguard`` binary installed beside the package
(``os.execv``), so the output and the exit status are the command's own
(0, 1 for a leak, 2 for a usage error or a script that raised).

The binary embeds the CPython it was built with. When this interpreter is
that same version, the binary starts Python as this interpreter
(``LEAKGUARD_PYTHON_PROGRAM``), so scripts see this interpreter's
``sys.path`` (a venv's site-packages included).

Example::

    $ python -m leakguard doctor examples/leaky_plugin.py:handle_request
    $ python -m leakguard run --top 5 server.py
"""

import os
import sys

__all__ = ["command_path", "main"]


def command_path():
    """command_path() -> str

    The path of the ``leakguard`` binary this package runs. Raises
    FileNotFoundError (with the places looked at) when it is missing.
    """
    override = os.environ.get("LEAKGUARD_COMMAND")
    candidates = [override] if override else []
    try:
        from leakguard import _paths
    except ImportError:
        _paths = None
    if _paths is not None:
        here = os.path.dirname(os.path.abspath(__file__))
        candidates.append(os.path.normpath(os.path.join(here, _paths.COMMAND)))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(
        "leakguard: the 'leakguard' binary is not installed beside the package "
        "(looked at: %s); reinstall leakguard or set LEAKGUARD_COMMAND"
        % (", ".join(candidates) or "no recorded path"))


def _command_environment():
    env = dict(os.environ)
    if "LEAKGUARD_PYTHON_PROGRAM" not in env:
        try:
            from leakguard import _paths
            built_for = getattr(_paths, "PYTHON_VERSION", None)
        except ImportError:
            built_for = None
        here = "%d.%d" % sys.version_info[:2]
        if built_for == here and sys.executable:
            env["LEAKGUARD_PYTHON_PROGRAM"] = sys.executable
    return env


def main(argv=None):
    """main(argv=None) -> int

    Runs ``leakguard ARGV...`` in place of this process (argv defaults to
    ``sys.argv[1:]``); returns only when the binary cannot be started (2).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        path = command_path()
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(path, [path] + args, _command_environment())
    except OSError as error:
        print("leakguard: cannot run %s: %s" % (path, error), file=sys.stderr)
        return 2
    return 2  # not reached


if __name__ == "__main__":
    sys.exit(main())
