# The package leakguard: the extension's names (_leakguard.pyi) and the
# Python-side helpers of __init__.py.
from typing import IO, Any, Iterable, Optional

from leakguard._leakguard import *  # noqa: F401,F403
from leakguard._leakguard import __version__ as __version__

__all__: list[str]

def show_backrefs(objs: Any, max_depth: int = 3, extra_ignore: Iterable[Any] = (),
                  too_many: int = 10, filename: Optional[str] = None,
                  output: Optional[IO[str]] = None) -> Optional[str]: ...
