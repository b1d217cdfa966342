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

__all__ = list(_extension_all)

# Functions defined by the extension report the extension's name as their
# module; the public name is the package.
for _name in __all__:
    _obj = getattr(_leakguard, _name)
    if type(_obj).__name__ == "builtin_function_or_method":
        _obj.__module__ = __name__
del _name, _obj
