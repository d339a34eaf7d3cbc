"""A wrong clock for one process, as on a host whose clock has drifted: put this folder on PYTHONPATH and set
LIBRARY_CLOCK_SKEW to the offset in seconds (a float, negative for a clock behind).

Python imports `sitecustomize` at start-up, before the program's own modules, so everything the process later
imports sees the offset: `time.time()` and `time.time_ns()` (the Cassandra driver's write timestamps and the
service's `write_time()`), and `datetime.now()`, `utcnow()` and `today()` (the service's `now()`). The
monotonic clocks are left alone, as a drifted wall clock leaves them: timeouts and the event loop still work.

`datetime.datetime` is a C type whose methods cannot be replaced, so the `datetime` module's name is rebound
to a subclass with skewed constructors of the current time. They return plain datetimes, and the subclass
answers isinstance() for any datetime, so code that checks types or maps them exactly (the driver's encoders)
sees nothing unusual. Without the variable (or with 0) nothing is changed.
"""

from __future__ import annotations

import os


def _install(skew: float) -> None:
    import copyreg
    import datetime as datetime_module
    import time
    from typing import Any, cast

    real_time, real_time_ns = time.time, time.time_ns
    real_datetime = datetime_module.datetime
    skew_ns = round(skew * 1e9)
    delta = datetime_module.timedelta(seconds=skew)

    def skewed_time() -> float:
        return real_time() + skew

    def skewed_time_ns() -> int:
        return real_time_ns() + skew_ns

    class _Meta(type):
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, real_datetime)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, real_datetime)

    # The base is named through the module (real_datetime is the same class) so the type checker sees a class.
    class datetime(datetime_module.datetime, metaclass=_Meta):  # noqa: N801 - stands in for datetime.datetime
        __slots__ = ()  # the C type's size: extensions built against it check it on import

        @classmethod
        def now(cls, tz: datetime_module.tzinfo | None = None) -> datetime_module.datetime:  # type: ignore[override]
            return real_datetime.now(tz) + delta

        @classmethod
        def utcnow(cls) -> datetime_module.datetime:  # type: ignore[override]
            return real_datetime.utcnow() + delta

        @classmethod
        def today(cls) -> datetime_module.datetime:  # type: ignore[override]
            return real_datetime.today() + delta

    datetime.__module__ = "datetime"
    datetime.__qualname__ = datetime.__name__ = "datetime"

    # pickle finds a class by its name and insists on the same object: plain datetimes go by the new name.
    def reduce(d: datetime_module.datetime) -> tuple[type[datetime], tuple[Any, ...]]:
        return datetime, cast(tuple[Any, ...], d.__reduce__()[1])

    copyreg.pickle(real_datetime, reduce)
    time.time, time.time_ns = skewed_time, skewed_time_ns
    datetime_module.datetime = datetime  # type: ignore[misc]


def _skew_from_environment() -> float:
    raw = os.environ.get("LIBRARY_CLOCK_SKEW", "").strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"LIBRARY_CLOCK_SKEW={raw!r} is not a number of seconds") from None


_skew = _skew_from_environment()
if _skew:
    _install(_skew)
