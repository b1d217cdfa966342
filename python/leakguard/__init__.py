"""leakguard: find and prevent Python memory leaks in long-lived processes.

The C extension ``leakguard._leakguard`` holds the building blocks; this
package re-exports them under ``leakguard`` and adds the Python-side tools:

- ``python -m leakguard doctor|run ...``: the ``leakguard`` command
  (:mod:`leakguard.__main__`).
- ``pytest --leakguard`` and the ``no_leaks`` / ``limit_leaks`` /
  ``limit_memory`` markers (:mod:`leakguard.pytest_plugin`).
- WSGI and ASGI middleware that track memory per request
  (:mod:`leakguard.middleware`).

Example::

    >>> import leakguard
    >>> @leakguard.lru_cache(maxsize=2)
    ... def square(x):
    ...     return x * x
    >>> square(3)
    9
"""

from leakguard import _leakguard
from leakguard._leakguard import *  # noqa: F401,F403  (the extension's names)
from leakguard._leakguard import __all__ as _extension_all
from leakguard._leakguard import __version__

__all__ = list(_extension_all) + ["show_backrefs"]


def show_backrefs(objs, max_depth=3, extra_ignore=(), too_many=10, filename=None, output=None):
    """show_backrefs(objs, max_depth=3, extra_ignore=(), too_many=10, filename=None, output=None)

    objgraph.show_backrefs(): the referrers of objs (an object, or a list or
    tuple of them) up to max_depth levels, as a Graphviz graph. ``output``
    (a text file) receives the DOT text; ``filename`` ending in ``.dot``
    gets the DOT text, any other extension (``.png``, ``.svg``, ``.pdf``) the
    image rendered by Graphviz's ``dot`` (RuntimeError naming the problem
    when it is missing or fails). Neither given: the DOT text is returned.

        >>> import json
        >>> json._kept = [[]]
        >>> 'digraph' in show_backrefs(json._kept[0], max_depth=2)
        True
    """
    import os
    import shutil
    import subprocess
    import tempfile

    dot = backrefs_dot(objs, max_depth=max_depth, too_many=too_many,
                       extra_ignore=list(extra_ignore or ()))
    if output is not None:
        output.write(dot)
    if filename is None:
        return dot if output is None else None
    extension = os.path.splitext(filename)[1].lstrip(".").lower()
    if extension in ("dot", "gv", ""):
        with open(filename, "w") as f:
            f.write(dot)
        return None
    program = shutil.which("dot")
    if program is None:
        raise RuntimeError("show_backrefs(): rendering %s needs Graphviz's 'dot' "
                           "(Debian: graphviz); write a .dot file instead" % filename)
    with tempfile.NamedTemporaryFile("w", suffix=".dot", delete=False) as f:
        f.write(dot)
    try:
        done = subprocess.run([program, "-T" + extension, "-o", filename, f.name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        os.unlink(f.name)
    if done.returncode != 0:
        raise RuntimeError("show_backrefs(): dot -T%s failed: %s"
                           % (extension, done.stderr.strip()))
    return None


# Functions defined by the extension report the extension's name as their
# module; the public name is the package.
for _name in _extension_all:
    _obj = getattr(_leakguard, _name)
    if type(_obj).__name__ == "builtin_function_or_method":
        _obj.__module__ = __name__
del _name, _obj
