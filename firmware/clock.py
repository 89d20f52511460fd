# The board's millisecond clock: time.ticks_ms / ticks_diff on MicroPython, a monotonic
# clock on CPython.  Features time their jobs with it (durations, never wall time).
import time

try:
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
except AttributeError:
    def ticks_ms():
        return int(time.monotonic() * 1000)   # type: ignore[attr-defined]

    def ticks_diff(a, b):
        return a - b


def ms_since(t0):
    """Milliseconds from ticks_ms() value t0 until now."""
    return ticks_diff(ticks_ms(), t0)
