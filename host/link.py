"""The host end of one board's serial link.

A reader thread splits the byte stream into frames with the same wire module the
firmware uses, answers the board's drive requests from the simulated drives, hands
peer frames to the fabric, completes the host's own requests, and records every frame
that crosses the wire (direction, time, channel, kind, seq, length).

Recovery from a lossy link mirrors the firmware's (firmware/link.py): requests are
resent with the same seq until answered (at once when the board reports a dropped
frame), a drive request seen before is answered from the remembered response instead
of being executed again, and a copy older than the board's low-water mark is dropped,
so a late copy of an old write never lands.
"""
from __future__ import annotations

import itertools
import json
import queue
import struct
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from firmware import wire
from host import ptyio


class LinkError(Exception):
    pass


class StatusError(Exception):
    """A request answered with an error status."""

    def __init__(self, status: int, what: str, detail: str = ""):
        self.status = status
        self.name = wire.status_name(status)
        super().__init__(f"{what}: {self.name}" + (f" ({detail})" if detail else ""))


@dataclass
class _Waiter:
    ev: threading.Event = field(default_factory=threading.Event)
    frame: bytes = b""
    fast: int = 0
    kind: int = 0
    payload: bytes = b""
    ch: int = 0
    seq: int = 0
    sent_kind: int = 0
    due: float = 0.0
    answered: int = 0        # the order answers came in (1, 2, ...)


DRIVE_RECENT = 4096   # at most this many answered drive requests remembered
FAST_RESENDS = 2      # fast resends of a request per retry period (no resend storms)
OUT_ROOM = 4096       # bytes a pty takes without the reader having to wait (see send_raw)
WRITE_BATCH = 64      # queued frames the writer thread sends in one write at most


@dataclass
class Record:
    t: float
    dir: str        # "tx" host->board, "rx" board->host
    ch: int
    kind: int
    seq: int
    n: int

    def as_dict(self):
        return {"t": round(self.t, 6), "dir": self.dir, "ch": wire.channel_name(self.ch),
                "kind": wire.kind_name(self.kind), "seq": self.seq, "len": self.n}


class BoardLink:
    def __init__(self, ser, name: str = "unit", max_payload: int = wire.MAX_PAYLOAD, drive_handler=None,
                 trace: int = 100000, retry: float = 0.5):
        self.ser = ser
        self.name = name
        self.max_payload = max_payload
        self.dec = wire.Decoder(wire.MAX_PAYLOAD)
        self.wlock = threading.Lock()
        self.slock = threading.Lock()
        self.seq = 0
        self.waiters: dict[tuple[int, int], _Waiter] = {}
        self.drive_handler = drive_handler   # fn(drive, kind, payload) -> (status, data)
        # fn(drive) -> True if that drive's requests may block (an injected latency):
        # they are then served by a thread of that drive's own, so the link reader
        # and the other drives go on meanwhile (requests to one drive stay in order)
        self.drive_blocks = None
        self.dlock = threading.Lock()
        self.acond = threading.Condition()   # notified on every answer (wait_any)
        self._answers = itertools.count(1)
        self._drive_q: dict[int, queue.SimpleQueue] = {}
        self.peer_handler = None    # fn(link, peer, kind, seq, payload)
        self.hello = threading.Event()
        self.hello_info: dict = {}
        self.logs: deque[str] = deque(maxlen=1000)
        self.dropped_notices = 0
        self.trace: deque[Record] = deque(maxlen=trace)
        self.on_record = None       # optional fn(link, dir, ch, kind, seq, payload): sees every traced frame
        self.retry = retry
        self.retransmits = 0
        self.dup_drive_requests = 0
        self.stale_drive_requests = 0
        self.board_low: int | None = None
        self.drive_recent: OrderedDict[int, bytes] = OrderedDict()
        self.tx_bytes = 0
        self.rx_bytes = 0
        self.closed = False
        self.lost = ""               # why the port failed under the reader (for LinkError messages)
        self._stop = False
        self._outq: queue.SimpleQueue = queue.SimpleQueue()
        self._queued = 0             # frames the writer thread has still to send
        self._writer_thread = threading.Thread(target=self._writer, name=f"link-{name}-tx", daemon=True)
        self._writer_thread.start()
        self.thread = threading.Thread(target=self._reader, name=f"link-{name}", daemon=True)
        self.thread.link_reader = True   # see send_raw
        self.thread.start()

    def announce(self):
        """A new host end numbers its requests from 1: tell the board to forget the
        old ones (call once the link's hooks are in place)."""
        self.send(wire.CH_LINK, wire.K_PEER_RESET, 0, b"\xff")

    # ---- sending -----------------------------------------------------------
    def send_raw(self, data: bytes):
        if getattr(threading.current_thread(), "link_reader", False):
            self._send_from_reader(data)
            return
        with self.wlock:
            if self._queued:     # the rest of an earlier frame waits for the writer: after it
                self._enqueue(data)
            else:
                self._write_locked(data)

    def _send_from_reader(self, data: bytes):
        """The reader (answering a drive, passing a peer frame on) never blocks on the
        port: the board may be blocked writing to us, and with both directions full
        neither side would read again.  It writes what the pty takes at once; the rest,
        or the whole frame if another thread holds the port or frames wait, goes to the
        writer thread, which sends it before anyone else writes."""
        if not self._queued and self.wlock.acquire(blocking=False):
            try:
                if not self._queued:
                    k = self._write_some(data)
                    if k < len(data):
                        self._enqueue(data[k:])
                    return
            finally:
                self.wlock.release()
        self._enqueue(data)

    def _enqueue(self, data: bytes):
        with self.slock:
            self._queued += 1
        self._outq.put(data)

    def _write_some(self, data: bytes) -> int:
        """With wlock held: write what the port takes now; return the count (not a pty
        of its own: the whole frame if _room says it fits, else none)."""
        try:
            k = ptyio.write_now(self.ser, data)
        except OSError as e:
            raise LinkError(f"{self.name}: link lost: {self.lost or e}") from e
        if k is None:
            if not self._room(len(data)):
                return 0
            self._write_locked(data)
            return len(data)
        self.tx_bytes += k
        return k

    def _write_locked(self, data: bytes):
        """Write with wlock held."""
        try:
            self.ser.write(data)
        except Exception as e:   # the port closed under us (board killed, link closed)
            if self._stop or self.closed:
                raise LinkError(f"{self.name}: link lost: {self.lost}" if self.lost else
                                f"{self.name}: link closed") from e
            raise
        self.tx_bytes += len(data)

    def _room(self, n: int) -> bool:
        """True if n more bytes fit the port's output without waiting (a pty: what the
        board has not read yet; ports that cannot tell: always)."""
        port = getattr(self.ser, "ser", self.ser)    # under a FaultyPort
        if not type(port).__module__.startswith("serial"):
            return True     # a socket (in-process board): its buffer is far larger than a frame
        try:
            return port.out_waiting + n <= OUT_ROOM
        except Exception:
            return True

    def _writer(self):
        q = self._outq
        while True:
            parts = [q.get()]
            # every frame already queued goes out in the same write, in its order (one
            # system call and one wake-up of the board for several frames)
            while parts[-1] is not None and len(parts) < WRITE_BATCH and not q.empty():
                parts.append(q.get())
            stop = parts[-1] is None
            if stop:
                parts.pop()
            if parts:
                try:
                    with self.wlock:
                        data = b"".join(parts)
                        self.ser.write(data)
                        self.tx_bytes += len(data)
                except Exception:   # port closed: the reader notices and marks the link closed
                    pass
                with self.slock:
                    self._queued -= len(parts)
            if stop:
                return

    def _low(self) -> int:
        """The oldest request we still await (or the next seq): sent in every frame, so
        the board can drop late copies of requests we already have answers to."""
        with self.slock:
            low, far = (self.seq + 1) & 0xFFFF, 0
            for _, seq in self.waiters:
                d = (self.seq - seq) & 0xFFFF
                if d >= far:
                    far, low = d, seq
        return low

    def send(self, ch: int, kind: int, seq: int, payload: bytes = b""):
        self.trace.append(Record(time.monotonic(), "tx", ch, kind, seq, len(payload)))
        if self.on_record:
            self.on_record(self, "tx", ch, kind, seq, payload)
        self.send_raw(wire.pack(ch, kind, seq, payload, self._low()))

    def request(self, ch: int, kind: int, payload: bytes = b"", timeout: float = 30.0) -> tuple[int, bytes]:
        """Send a request and wait for its response; return (status, data)."""
        return self.finish(self.start(ch, kind, payload), timeout)

    def start(self, ch: int, kind: int, payload: bytes = b"") -> _Waiter:
        """Send a request now and return its handle; finish() waits for the answer.
        Any number may be outstanding (answers are matched by sequence number)."""
        if len(payload) > self.max_payload:
            raise LinkError(f"{self.name}: payload of {len(payload)} bytes exceeds the board's "
                            f"{self.max_payload}-byte frames")
        w = _Waiter()
        with self.slock:
            self.seq = (self.seq + 1) & 0xFFFF
            seq = self.seq
            self.waiters[(ch, seq)] = w
        w.ch, w.seq, w.sent_kind = ch, seq, kind
        w.frame = wire.pack(ch, kind, seq, payload, self._low())
        self.trace.append(Record(time.monotonic(), "tx", ch, kind, seq, len(payload)))
        if self.on_record:
            self.on_record(self, "tx", ch, kind, seq, payload)
        self.send_raw(w.frame)
        w.due = time.monotonic() + self.retry
        return w

    def finish(self, w: _Waiter, timeout: float = 30.0) -> tuple[int, bytes]:
        """Wait for the answer to a started request (resending it while none comes)."""
        ch, seq, kind = w.ch, w.seq, w.sent_kind
        end = time.monotonic() + timeout
        while not w.ev.wait(min(max(0.0, w.due - time.monotonic()), max(0.0, end - time.monotonic()))):
            now = time.monotonic()
            if now >= end or self.closed:
                with self.slock:
                    self.waiters.pop((ch, seq), None)
                if self.lost:
                    raise LinkError(f"{self.name}: link lost: {self.lost}")
                raise LinkError(f"{self.name}: no response to {wire.kind_name(kind)} on "
                                f"{wire.channel_name(ch)} within {timeout} s")
            if now >= w.due:
                self.retransmits += 1
                w.fast = 0
                w.due = now + self.retry
                self.send_raw(w.frame)
        if not w.payload:
            if self.lost:
                raise LinkError(f"{self.name}: link lost: {self.lost}")
            raise LinkError(f"{self.name}: empty response to {wire.kind_name(kind)}")
        return w.payload[0], w.payload[1:]

    def wait_any(self, ws: list, timeout: float = 30.0) -> _Waiter:
        """The first answered of several started requests (the earliest answer if more
        than one has come), resending those whose answer is late meanwhile."""
        end = time.monotonic() + timeout
        while True:
            done = [w for w in ws if w.ev.is_set()]
            if done:
                return min(done, key=lambda w: w.answered or 1 << 62)
            now = time.monotonic()
            if now >= end or self.closed:
                return ws[0]          # finish() on it reports the failure
            for w in ws:
                if now >= w.due:
                    self.retransmits += 1
                    w.fast = 0
                    w.due = now + self.retry
                    self.send_raw(w.frame)
            with self.acond:
                if not any(w.ev.is_set() for w in ws):
                    self.acond.wait(max(0.0, min(min(w.due for w in ws), end) - time.monotonic()))

    def next_seq(self) -> int:
        """Take a request number (for a frame built by hand and sent with send_raw)."""
        with self.slock:
            self.seq = (self.seq + 1) & 0xFFFF
            return self.seq

    def low_mark(self) -> int:
        return self._low()

    def expect(self, ch: int, seq: int) -> _Waiter:
        """Wait for the response to a frame sent with send_raw (fuzzing, raw tests):
        w.ev is set and w.payload filled when it comes."""
        w = _Waiter()
        with self.slock:
            self.waiters[(ch, seq)] = w
        return w

    def unexpect(self, ch: int, w: _Waiter):
        with self.slock:
            for k, v in list(self.waiters.items()):
                if v is w:
                    del self.waiters[k]

    def mgmt(self, op: str, timeout: float = 30.0, check: bool = True, **args):
        """A management command; returns the JSON reply (raises StatusError if check)."""
        args["op"] = op
        st, data = self.request(wire.CH_MGMT, wire.K_MGMT, json.dumps(args).encode(), timeout)
        try:
            reply = json.loads(data) if data else {}
        except ValueError:   # e.g. INTERNAL carries the firmware's exception text
            reply = {"error": data.decode(errors="replace")}
        if check and st != wire.OK:
            raise StatusError(st, f"{self.name}: {op}", reply.get("error", ""))
        if not check:
            reply["_status"] = st
        return reply

    # ---- the reader thread ---------------------------------------------------
    def _reader(self):
        read, done = ptyio.reader(self.ser)
        try:
            self._read_frames(read)
        finally:
            done()
            self.closed = True
            with self.slock:
                for w in self.waiters.values():
                    w.ev.set()
            with self.acond:
                self.acond.notify_all()

    def _read_frames(self, read):
        dec = self.dec
        while not self._stop:
            try:
                data = read()
            except Exception as e:
                if not self._stop:
                    self.lost = str(e) or type(e).__name__
                break
            if not data:
                continue
            self.rx_bytes += len(data)
            dec.push(data)
            while True:
                fr = dec.pop()
                if dec.rejects:
                    self._answer_rejects()
                if fr is None:
                    break
                ch, kind, seq, payload = fr
                self.trace.append(Record(time.monotonic(), "rx", ch, kind, seq, len(payload)))
                if self.on_record:
                    self.on_record(self, "rx", ch, kind, seq, payload)
                try:
                    self._dispatch(ch, kind, seq, bytes(payload))
                except Exception as e:  # keep the link alive; the error is visible in logs
                    self.logs.append(f"host: error handling {wire.kind_name(kind)}: {e!r}")

    def _answer_rejects(self):
        lost = False
        for ch, kind, seq, st in self.dec.rejects:
            if ch < 0:   # header untrusted: tell the board, which resends what it awaits
                self.send(wire.CH_LINK, wire.K_DROPPED, 0, struct.pack(wire.DROPPED_FMT, st, 0, 0, 0))
                lost = True
            else:
                self.send(ch, kind | wire.RESP, seq, bytes([st]))
        self.dec.rejects.clear()
        if lost:   # the lost frame may have been the answer to one of ours: ask again now
            self.resend_all()

    def resend_all(self):
        with self.slock:
            due = [w for w in self.waiters.values() if not w.ev.is_set() and w.fast < FAST_RESENDS]
            for w in due:
                w.fast += 1
        for w in due:
            self.retransmits += 1
            self.send_raw(w.frame)

    def _serve_drive(self, ch, kind, seq, payload):
        key = (ch << 16) | seq
        low = self.dec.low
        with self.dlock:
            if self.board_low is None or wire.stale(self.board_low, low):
                self.board_low = low
                for k in [k for k in self.drive_recent if wire.stale(k & 0xFFFF, low)]:
                    del self.drive_recent[k]
            seen = key in self.drive_recent
            resp = self.drive_recent.get(key)
            if not seen and self.drive_handler is not None and not wire.stale(seq, self.board_low):
                self.drive_recent[key] = None     # being served
        if seen:
            self.dup_drive_requests += 1
            if resp is not None:     # None: still being served; its answer will go out
                self.send(ch, kind | wire.RESP, seq, resp)
            return
        if wire.stale(seq, self.board_low):
            self.stale_drive_requests += 1    # the board has its answer: never execute it
            return
        if self.drive_handler is None:
            return   # no drives attached yet: stay silent, the board asks again
        d = ch - wire.CH_DRIVE
        if self.drive_blocks is not None and (d in self._drive_q or self.drive_blocks(d)):
            q = self._drive_q.get(d)
            if q is None:
                q = self._drive_q[d] = queue.SimpleQueue()
                threading.Thread(target=self._drive_worker, args=(q,), name=f"link-{self.name}-drive{d}",
                                 daemon=True).start()
            q.put((ch, kind, seq, payload, key))
            return
        self._answer_drive(ch, kind, seq, payload, key)

    def _answer_drive(self, ch, kind, seq, payload, key):
        try:
            st, data = self.drive_handler(ch - wire.CH_DRIVE, kind, payload)
        except BaseException:
            with self.dlock:
                self.drive_recent.pop(key, None)   # not served: a resend is served afresh
            raise
        resp = bytes([st]) + data
        with self.dlock:
            self.drive_recent[key] = resp
            if len(self.drive_recent) > DRIVE_RECENT:
                self.drive_recent.popitem(last=False)
        self.send(ch, kind | wire.RESP, seq, resp)

    def _drive_worker(self, q):
        while True:
            item = q.get()
            if item is None or self._stop:
                return
            try:
                self._answer_drive(*item)
            except Exception as e:   # the link closed under us, or a handler error: visible in logs
                self.logs.append(f"host: error serving a drive request: {e!r}")

    def _dispatch(self, ch, kind, seq, payload):
        if kind & wire.RESP:
            with self.slock:
                w = self.waiters.pop((ch, seq), None)
            if w is not None:
                w.kind = kind
                w.payload = payload
                w.answered = next(self._answers)
                w.ev.set()
                with self.acond:
                    self.acond.notify_all()
            elif wire.CH_PEER <= ch < wire.CH_MGMT and self.peer_handler:
                self.peer_handler(self, ch - wire.CH_PEER, kind, seq, payload, self.dec.low)
            return
        if wire.CH_DRIVE <= ch < wire.CH_PEER:
            self._serve_drive(ch, kind, seq, payload)
        elif wire.CH_PEER <= ch < wire.CH_MGMT:
            if self.peer_handler:
                self.peer_handler(self, ch - wire.CH_PEER, kind, seq, payload, self.dec.low)
            else:
                self.send(ch, kind | wire.RESP, seq, bytes([wire.E_PATH_DOWN]))
        elif ch == wire.CH_LOG:
            self.logs.append(payload.decode(errors="replace"))
        elif ch == wire.CH_LINK and kind == wire.K_HELLO:
            self.drive_recent.clear()   # a new boot numbers its requests from 1 again
            self.board_low = None
            self.hello_info = json.loads(payload)
            self.hello.set()
        elif ch == wire.CH_LINK and kind == wire.K_DROPPED:
            self.dropped_notices += 1
            self.resend_all()
            reason = struct.unpack_from(wire.DROPPED_FMT, payload)[0] if len(payload) >= 5 else 0
            self.logs.append(f"board dropped a frame: {wire.status_name(reason)}")

    def counters(self) -> dict:
        c = self.dec.counters()
        c.update(retransmits=self.retransmits, dup_drive_requests=self.dup_drive_requests,
                 stale_drive_requests=self.stale_drive_requests,
                 dropped_notices=self.dropped_notices, tx_bytes=self.tx_bytes, rx_bytes=self.rx_bytes)
        return c

    def wait_hello(self, timeout: float = 30.0) -> dict:
        if not self.hello.wait(timeout):
            raise LinkError(f"{self.name}: board did not announce itself within {timeout} s")
        self.hello.clear()
        return self.hello_info

    def close(self):
        self._stop = True
        self._outq.put(None)
        for q in self._drive_q.values():
            q.put(None)
        try:
            self.ser.close()
        except Exception:
            pass
        self.thread.join(timeout=2)
