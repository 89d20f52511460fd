"""The link's limit and host I/O through a unit, for bench/test_bench_io.py.

Link limit.  bench/echo.py runs on the board's interpreter (the emulator's MicroPython
binary, or CPython for the CPython board) with the pty as its console, exactly as the
firmware runs; the host writes frames of one size through pyserial, keeps WINDOW of
them in flight and reads the echo back.  The rate R(size) counts both directions:

    R = (bytes host -> board + bytes board -> host) / seconds

since both ends of a pty are driven by one process each, and the board's single
thread reads and writes alike, the two directions share one budget.

Efficiency of an I/O workload = achieved MB/s / link-limited MB/s, where the bound
counts every byte the RAID layout must move across the link for one host I/O (each
frame as it goes on the wire: COBS, header, CRC, delimiter), each frame at the echo
rate of its own size:

    bound time per I/O = sum over frames of wire_bytes(frame) / R(frame size)
    link-limited MB/s  = host bytes per I/O / bound time per I/O

  full-stripe RAID5 write of N data blocks on N+1 members (chunk c): the host's data
  in WRITE frames (N*c blocks, as many frames as the board's max_payload needs), then
  (N+1)*c blocks out to the drives, one DWRITE frame each: data and parity
  random read of one block that misses the cache: the block comes in from its drive
  (a DREAD response) and goes out to the host (a READ response)
Small frames (requests without data, statuses) are not counted: the bound is the
byte limit, so it is higher than anything a real exchange of requests can reach.
"""
from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from firmware import core, wire  # noqa: E402
from host.boards import CPythonLauncher, EmulatorLauncher  # noqa: E402

WINDOW = 4          # frames in flight during the echo


def wire_bytes(payload: int) -> int:
    """Bytes on the wire for a frame with `payload` bytes: worst-case COBS of header +
    payload + CRC, and the delimiter."""
    return core.cobs_max(wire.OVERHEAD + payload) + 1


def host_frame_blocks(max_payload: int, bs: int) -> int:
    """Blocks per host READ / WRITE frame (host.rig.Unit._io_chunk)."""
    return max(1, (max_payload - wire.IO_HEAD_LEN - 1) // bs)


# ---- the echo ------------------------------------------------------------------
class _EchoMixin:
    def command(self):
        cmd, env = super().command()
        # the launcher's interpreter (and heap size), running the echo instead of the firmware
        exe = cmd[:cmd.index("-m")] if "-m" in cmd else cmd[:1]
        return exe + [str(HERE / "echo.py"), str(65536)], env


class EmulatorEcho(_EchoMixin, EmulatorLauncher):
    pass


class CPythonEcho(_EchoMixin, CPythonLauncher):
    pass


def echo_rate(board: dict, state_dir: Path, size: int, seconds: float = 1.0) -> dict:
    """Echo frames of `size` bytes (no 0x00 inside, 0x00 last, like a frame) for about
    `seconds`; return {"size", "bytes", "seconds", "rate"} with rate in bytes/s."""
    cls = EmulatorEcho if board["kind"] == "emulator" else CPythonEcho
    launcher = cls(board, state_dir, "echo")
    ser = launcher.start()
    try:
        frame = bytes(random.Random(size).randrange(1, 256) for _ in range(size - 1)) + b"\x00"
        got = [0]
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    d = ser.read(ser.in_waiting or 1)
                except Exception:   # the echo died: the writer's wait below times out
                    return
                got[0] += len(d)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        # warm up: one frame there and back
        ser.write(frame)
        end = time.perf_counter() + 10
        while got[0] < size:
            if time.perf_counter() > end:
                raise RuntimeError("no echo: %s" % launcher.stderr_text()[-500:])
            time.sleep(0.001)
        got[0] = 0
        sent = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            while sent - got[0] >= WINDOW * size and th.is_alive():
                time.sleep(0)
            ser.write(frame)
            sent += size
        while got[0] < sent and time.perf_counter() - t0 < seconds + 10:
            time.sleep(0.0005)
        t = time.perf_counter() - t0
        stop.set()
        th.join(timeout=2)
        if got[0] < sent:
            raise RuntimeError("echo lost bytes: sent %d, got %d" % (sent, got[0]))
        return {"size": size, "bytes": 2 * sent, "seconds": t, "rate": 2 * sent / t}
    finally:
        launcher.stop()


def echo_latency(board: dict, state_dir: Path, size: int, n: int = 2000) -> dict:
    """One frame of `size` bytes in flight at a time, n times: the round trip through
    the board's interpreter and back, in microseconds {"p50_us", "p99_us", "n"} (what
    queue depth 1 costs before the firmware does anything)."""
    cls = EmulatorEcho if board["kind"] == "emulator" else CPythonEcho
    launcher = cls(board, state_dir, "echo")
    ser = launcher.start()
    try:
        frame = bytes(random.Random(size).randrange(1, 256) for _ in range(size - 1)) + b"\x00"
        lat = []
        for i in range(n + 20):
            t = time.perf_counter()
            ser.write(frame)
            got = 0
            end = t + 10
            while got < size:
                got += len(ser.read(size - got))
                if time.perf_counter() > end:
                    raise RuntimeError("no echo: %s" % launcher.stderr_text()[-500:])
            if i >= 20:             # after a warm-up
                lat.append(time.perf_counter() - t)
        lat.sort()
        return {"n": n, "p50_us": round(lat[n // 2] * 1e6, 1), "p99_us": round(lat[int(n * 0.99)] * 1e6, 1)}
    finally:
        launcher.stop()


# ---- the bound -------------------------------------------------------------------
def frames_write_stripe(n_data: int, chunk: int, bs: int, max_payload: int) -> list[int]:
    """Payload sizes of the data frames of one full-stripe write (see the module doc)."""
    blocks = n_data * chunk
    per = host_frame_blocks(max_payload, bs)
    out = []
    left = blocks
    while left:
        k = min(per, left)
        out.append(wire.IO_HEAD_LEN + k * bs)
        left -= k
    out += [wire.DIO_HEAD_LEN + bs] * ((n_data + 1) * chunk)
    return out


def frames_read_block(bs: int) -> list[int]:
    """Payload sizes of the data frames of a one-block read that misses the cache."""
    return [1 + bs, 1 + bs]    # DREAD response (status + data), READ response


def frames_write_block(bs: int) -> list[int]:
    """Payload sizes of the data frames of a one-block random RAID5 write, destaged as a
    read-modify-write: the host's WRITE, old data and old parity in (DREAD responses),
    new data and new parity out (DWRITEs)."""
    return [wire.IO_HEAD_LEN + bs, 1 + bs, 1 + bs, wire.DIO_HEAD_LEN + bs, wire.DIO_HEAD_LEN + bs]


def bound_mbps(frames: list[int], host_bytes: int, rate_of) -> float:
    """Link-limited MB/s: host_bytes per I/O over the time the frames need at rate_of(size)."""
    t = sum(wire_bytes(p) / rate_of(wire_bytes(p)) for p in frames)
    return host_bytes / t / 1e6


def nearest_rate(rates: dict[int, float]):
    """rate_of(size): the echo rate measured at the nearest frame size."""
    sizes = sorted(rates)

    def rate_of(size):
        return rates[min(sizes, key=lambda s: abs(s - size))]
    return rate_of


# ---- host I/O through a unit -------------------------------------------------------
def io_desc(drive_blocks: int = 2048, members: int = 5, chunk: int = 4, bs: int = 4096) -> dict:
    """One unit, a RAID5 of `members` drives (chunk blocks per member per stripe), one
    volume over the whole group, one host."""
    cap = (drive_blocks // chunk) * chunk * (members - 1)
    return {"rig": {"name": "iobench", "block_size": bs},
            "unit": [{"name": "u0", "drives": members, "drive_blocks": drive_blocks, "backing": "memory",
                      "group": [{"id": 0, "level": 5, "members": list(range(members)), "chunk": chunk,
                                 "auto_rebuild": False}],
                      "volume": [{"id": 0, "group": 0, "blocks": cap}]}],
            "host": [{"name": "h0", "unit": "u0", "port": 0}]}


def link_bytes(u) -> tuple[int, int]:
    c = u.link.counters()
    return c["tx_bytes"], c["rx_bytes"]


def _main():
    """python bench/linkbench.py [board ...]: echo rates at a few sizes."""
    import tempfile

    from host.boards import load_board

    for name in sys.argv[1:] or ["emulator", "cpython"]:
        b = load_board(name)
        with tempfile.TemporaryDirectory() as d:
            for size in (256, 4096 + 20, 16384, 65536):
                r = echo_rate(b, Path(d), size, 1.0)
                print("%-9s %6d B frames: %7.1f MB/s (both directions)" % (name, size, r["rate"] / 1e6))


if __name__ == "__main__":
    _main()
