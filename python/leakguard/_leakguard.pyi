# Type stubs for the extension module leakguard._leakguard (re-exported by
# the package leakguard). Kept in step with bindings/py_*.cc.

import tracemalloc
import types
from typing import (Any, Callable, Generic, Literal, NamedTuple, Optional,
                    ParamSpec, Tuple, TypedDict, TypeVar, Union, overload)

__version__: str
__all__: list[str]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_F = TypeVar("_F", bound=Callable[..., Any])

class _CacheInfo(NamedTuple):
    hits: int
    misses: int
    maxsize: Optional[int]
    currsize: int

class _CacheParameters(TypedDict):
    maxsize: Optional[int]
    typed: bool
    ttl: Optional[float]
    weak_self: bool

class _lru_cache_wrapper(Generic[_P, _R]):
    __wrapped__: Callable[_P, _R]
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...
    def cache_info(self) -> _CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_parameters(self) -> _CacheParameters: ...
    def cache_stats(self) -> dict[str, int]: ...

@overload
def lru_cache(maxsize: Callable[_P, _R], typed: bool = ...,
              ttl: Optional[float] = ..., *, weak_self: bool = ...,
              timer: Optional[Callable[[], float]] = ...) -> _lru_cache_wrapper[_P, _R]: ...
@overload
def lru_cache(maxsize: Optional[int] = 128, typed: bool = False,
              ttl: Optional[float] = None, *, weak_self: bool = False,
              timer: Optional[Callable[[], float]] = None
              ) -> Callable[[Callable[_P, _R]], _lru_cache_wrapper[_P, _R]]: ...

class EventBus:
    def __init__(self, *, on_error: Optional[Callable[[BaseException, Callable[..., Any]], Any]] = None) -> None: ...
    def subscribe(self, callback: _F, *, weak: bool = True) -> _F: ...
    def unsubscribe(self, callback: Callable[..., Any]) -> bool: ...
    def emit(self, *args: Any, **kwargs: Any) -> int: ...
    def clear(self) -> None: ...
    def listeners(self) -> list[Callable[..., Any]]: ...
    def __len__(self) -> int: ...

class MemoryReport(Tuple[Any, ...]):
    label: str
    mode: Literal["process", "traced"]
    rss_before: int
    rss_after: int
    rss_delta: int
    fds_delta: int
    threads_delta: int
    traced_delta: Optional[int]
    top: Tuple[Tuple[str, int, int, int], ...]
    elapsed: float
    warn_bytes: Optional[int]
    exceeded: bool

class MemoryGrowthWarning(UserWarning): ...

class memory_guard:
    def __init__(self, label: str, *, warn_mb: Optional[float] = None,
                 mode: Literal["process", "traced"] = "process", top: int = 10) -> None: ...
    @property
    def report(self) -> Optional[MemoryReport]: ...
    @property
    def label(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def warn_mb(self) -> Optional[float]: ...
    def __enter__(self) -> memory_guard: ...
    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[types.TracebackType]) -> Literal[False]: ...
    def __call__(self, func: _F) -> _F: ...

class _Cause(TypedDict, total=False):
    id: str
    holder: str
    sites: list[Any]
    evidence: list[Any]
    fix: str

class _Diagnosis(TypedDict, total=False):
    verdict: Literal["leak", "no_leak", "inconclusive"]
    note: str
    causes: list[_Cause]

def diagnose(func: Callable[[], Any], *, warmup: int = 3, repeat: int = 20,
             top: int = 5) -> _Diagnosis: ...

class _TrackerStats(TypedDict):
    count: int
    total_rss_delta: int
    p50_rss_delta: int
    p99_rss_delta: int
    max_rss_delta: int
    over_threshold: int
    worst: list[Tuple[str, int, float]]

class RequestTracker:
    def __init__(self, *, report_every: int = 0, rss_threshold_bytes: int = 0,
                 worst_kept: int = 10, name: str = "requests") -> None: ...
    def record(self, label: str, rss_delta: int, elapsed: float = 0.0) -> None: ...
    def stats(self) -> _TrackerStats: ...
    def reset(self) -> None: ...

def rss() -> int: ...

def typestats(shortnames: bool = True) -> dict[str, int]: ...
def most_common_types(limit: int = 10, shortnames: bool = True) -> list[Tuple[str, int]]: ...
def count(typename: str, /) -> int: ...
def by_type(typename: str, /) -> list[Any]: ...
def growth(limit: int = 10, peak_stats: Optional[dict[str, int]] = None,
           shortnames: bool = True) -> list[Tuple[str, int, int]]: ...

def find_backref_chain(obj: Any, predicate: Optional[Callable[[Any], bool]] = None,
                       max_depth: int = 20, extra_ignore: Optional[Any] = None) -> list[Any]: ...
def backref_path(obj: Any, predicate: Optional[Callable[[Any], bool]] = None,
                 max_depth: int = 20, extra_ignore: Optional[Any] = None) -> Optional[str]: ...
def backrefs_dot(objs: Any, max_depth: int = 3, too_many: int = 10,
                 extra_ignore: Optional[Any] = None) -> str: ...

class Snapshot:
    @property
    def trace_count(self) -> int: ...
    @property
    def total_size(self) -> int: ...
    @property
    def traceback_limit(self) -> int: ...
    def statistics(self, key_type: Literal["lineno", "filename", "traceback"],
                   cumulative: bool = False) -> list[tracemalloc.Statistic]: ...
    def compare_to(self, old_snapshot: Snapshot,
                   key_type: Literal["lineno", "filename", "traceback"],
                   cumulative: bool = False) -> list[tracemalloc.StatisticDiff]: ...
    def to_tracemalloc(self) -> tracemalloc.Snapshot: ...
    @classmethod
    def from_tracemalloc(cls, snapshot: tracemalloc.Snapshot, /) -> Snapshot: ...

def take_snapshot() -> Snapshot: ...
