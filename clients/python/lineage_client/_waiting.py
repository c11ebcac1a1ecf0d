"""Waiting for server-side work (a contribution's validation, a fine-tune): poll with backoff, draw progress,
and stop cleanly on Ctrl-C or a timeout. Waiting never changes anything on the server."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm import tqdm

from .errors import LineageConnectionError, RateLimitError, ServerError, WaitInterrupted, WaitTimeoutError

T = TypeVar("T")

# A few failed polls in a row (a restarting server, a dropped connection) are waited out; more are reported.
TRANSIENT_ERRORS_TOLERATED = 5


@dataclass(frozen=True)
class Backoff:
    """Poll every `initial` seconds while something changes; while nothing does, wait `factor` times longer
    each time, up to `maximum`."""

    initial: float = 1.0
    maximum: float = 10.0
    factor: float = 1.5

    def next(self, delay: float, changed: bool) -> float:
        return self.initial if changed else min(delay * self.factor, self.maximum)


def wait_until_finished(fetch: Callable[[], T], *, finished: Callable[[T], bool], fingerprint: Callable[[T], Hashable],
                        show: Callable[[T], None], describe: Callable[[T], str], backoff: Backoff,
                        timeout: float | None, sleep: Callable[[float], None],
                        clock: Callable[[], float] = time.monotonic) -> T:
    """Call `fetch` until `finished` says so and return the last result. `show` draws each result;
    `describe` words the last one for the messages of a timeout or a Ctrl-C."""
    started, delay, previous, last, failures = clock(), backoff.initial, None, None, 0
    try:
        while True:
            try:
                last = fetch()
                failures = 0
            except (LineageConnectionError, ServerError, RateLimitError) as exc:
                failures += 1
                if failures > TRANSIENT_ERRORS_TOLERATED:
                    raise
                retry = getattr(exc, "retry_after", None)
                delay = max(delay, retry or 0.0)
            else:
                show(last)
                if finished(last):
                    return last
                key = fingerprint(last)
                delay = backoff.next(delay, key != previous) if previous is not None else backoff.initial
                previous = key
            if timeout is not None and clock() - started + delay > timeout:
                state = describe(last) if last is not None else "no answer yet"
                raise WaitTimeoutError(f"Stopped waiting after {timeout:g} s ({state}); it goes on on the server.",
                                       result=last)
            sleep(delay)
    except KeyboardInterrupt:
        state = describe(last) if last is not None else "no answer yet"
        raise WaitInterrupted(f"Stopped waiting ({state}); nothing was changed on the server.", result=last) from None


class Progress:
    """A tqdm bar on stderr (or `file`), or nothing when `enabled` is false."""

    def __init__(self, *, enabled: bool, desc: str, total: float | None, unit: str, unit_scale: bool = False,
                 file: Any = None) -> None:
        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, unit_divisor=1024 if unit_scale
                        else 1000, disable=not enabled, file=file or sys.stderr, mininterval=0.0, leave=True,
                        dynamic_ncols=False, ncols=100)

    def set(self, *, n: float, total: float | None = None, postfix: str = "") -> None:
        if total is not None and total != self.bar.total:
            self.bar.total = total
        self.bar.n = n
        if postfix:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

