# The board end of the serial link: frame I/O, requests the board makes (drive and
# peer I/O) and requests it serves (host ports, management, peers).
#
# The reader task never waits on anything but the port: responses are copied straight
# into the waiting caller's buffer, and incoming requests are copied into a free
# worker's preallocated buffer (or refused with BUSY), so a full cache can never stall
# the drive responses that would free it.
#
# Recovery from a lossy link (both ends do the same):
#   - a request without a response in retry_ms is sent again with the same seq, and
#     at once when the other end reports a dropped frame (DROPPED notice);
#   - a request whose (channel, seq) was seen recently is not executed twice: while it
#     runs, copies are ignored; once answered, a copy gets the same response again
#     (reads are idempotent and are simply executed again);
#   - every frame carries its sender's low-water mark (the oldest request it still
#     awaits); a request copy older than the newest mark seen from that sender is stale
#     (its sender has the answer): it is dropped and counted, never executed, so a
#     delayed old WRITE can never overwrite newer data;
#   - a request is fast-resent (after a DROPPED notice) at most FAST_RESENDS times per
#     retry period, so corruption cannot snowball into a resend storm.
import asyncio
import struct

from firmware import wire

if hasattr(asyncio, "wait_for_ms"):  # MicroPython
    wait_ms = asyncio.wait_for_ms
    sleep_ms = asyncio.sleep_ms
else:
    async def wait_ms(aw, ms):
        # asyncio.timeout, not wait_for: wait_for in CPython 3.11 can swallow a
        # cancellation that races its timeout, and a task would then never stop
        async with asyncio.timeout(ms / 1000):
            return await aw

    async def sleep_ms(ms):
        await asyncio.sleep(ms / 1000)


# Requests that may simply be executed again when a copy arrives.
IDEMPOTENT = (wire.K_READ, wire.K_VOLINFO)
FAST_RESENDS = 2
LOW_JUMP = 4096


def _sender(ch):
    """Requests on peer channel k come from peer k's numbering; the rest from the host's."""
    return ch if wire.CH_PEER <= ch < wire.CH_MGMT else -1


class Pending:
    """One outstanding request the board made; preallocated, reused."""

    def __init__(self):
        self.ev = asyncio.Event()
        self.seq = -1
        self.status = 0
        self.ch = 0
        self.kind = 0
        self.head = bytearray(8)   # copy of the request head (resent as is)
        self.fast = 0              # fast resends since the last timed one
        self.nhead = 0
        self.data = b""            # request data: the caller keeps it unchanged until finish()
        self.into = None           # buffer for response data (after the status byte)
        self.n = 0                 # response data bytes copied into `into`


class Request:
    """One incoming request, copied out of the decoder's buffer."""

    def __init__(self, max_payload):
        self.buf = bytearray(max_payload)
        self.mv = memoryview(self.buf)
        self.ch = 0
        self.kind = 0
        self.seq = 0
        self.n = 0
        self.ev = asyncio.Event()
        self.busy = False

    def payload(self):
        return self.mv[:self.n]


class Link:
    def __init__(self, port, max_payload, nworkers=4, npending=24, retry_ms=300, rx_chunk=1024):
        self.port = port
        self.max_payload = max_payload
        self.enc = wire.Encoder(max_payload)
        self.dec = wire.Decoder(max_payload)
        self.rxbuf = bytearray(rx_chunk)   # bytes taken from the port per read (board budget)
        self.seq = 0
        self.pending = {}
        # Outstanding requests of the board.  RAID I/O runs under the RAID lock and
        # uses at most max_members + 1 at once; the unit sizes the pool above that.
        self.free = [Pending() for _ in range(npending)]
        self.workers = [Request(max_payload) for _ in range(nworkers)]
        self.status1 = bytearray(1)
        self.dropped_head = bytearray(5)
        self.handler = None      # async handler(req) -> None  (set by the unit)
        self.on_frame = None     # optional sync hook(ch, kind, seq, payload) for non-requests
        self.retry_ms = retry_ms
        self.recent = {}           # (ch << 16 | seq) -> None while running, else response
        self.lows = {}             # sender -> newest low-water mark seen
        self.stale_requests = 0
        self.tx_frames = 0
        self.busy_refused = 0
        self.timeouts = 0
        self.late_responses = 0
        self.retransmits = 0
        self.dup_requests = 0
        self.closed = False

    # ---- sending -------------------------------------------------------
    def send(self, ch, kind, seq, head=b"", data=b""):
        self.port.write(self.enc.frame(ch, kind, seq, head, data, self._low()))
        self.tx_frames += 1

    def respond(self, ch, kind, seq, status, data=b""):
        self.status1[0] = status
        self.send(ch, kind | wire.RESP, seq, self.status1, data)
        key = (ch << 16) | seq
        if key in self.recent:
            if kind in IDEMPOTENT:
                self._forget(key)
            else:
                self.recent[key] = bytes(self.status1) + bytes(data)

    def _forget(self, key):
        self.recent.pop(key, None)

    def _admit(self, ch, seq, low):
        """Decide on an incoming request: 'new', 'dup' or 'stale'."""
        key = (ch << 16) | seq
        if key in self.recent:
            return "dup"
        who = _sender(ch)
        cur = self.lows.get(who)
        # marks only move forward, and by less than LOW_JUMP at a time: an honest
        # sender's mark creeps; a frame claiming a far-away one (a confused or forged
        # sender) must not make every later request look stale
        if cur is None or (wire.stale(cur, low) and ((low - cur) & 0xFFFF) < LOW_JUMP):
            cur = low
            self.lows[who] = low
            self._purge(who, low)
        if wire.stale(seq, cur):
            return "stale"
        self.recent[key] = None
        return "new"

    def forget_sender(self, who):
        """A sender (-1: the host; else its peer channel) starts numbering its requests
        from the start again: forget what we remember of its old ones."""
        self.lows.pop(who, None)
        for k in [k for k in self.recent if _sender(k >> 16) == who]:
            del self.recent[k]

    def _purge(self, who, low):
        """Forget requests their sender no longer waits for."""
        drop = [k for k in self.recent if _sender(k >> 16) == who and wire.stale(k & 0xFFFF, low)]
        for k in drop:
            del self.recent[k]

    def _low(self):
        """Our low-water mark: the oldest request we still await (or the next seq)."""
        low = (self.seq + 1) & 0xFFFF
        far = 0
        for seq in self.pending:
            d = (self.seq - seq) & 0xFFFF
            if d >= far:
                far = d
                low = seq
        return low

    def log(self, text):
        self.send(wire.CH_LOG, wire.K_LOG, 0, b"", text)

    # ---- requests the board makes --------------------------------------
    def start(self, ch, kind, head, data=b"", into=None):
        """Send a request now and return its Pending (await finish() for the status),
        or None if every Pending is in use.  Never yields: the caller's buffers go out
        exactly as they are at the call (RAID relies on it for data/parity consistency),
        and must stay unchanged until finish() returns (a retransmission resends them)."""
        if not self.free:
            return None
        p = self.free.pop()
        self.seq = (self.seq + 1) & 0xFFFF
        p.seq = self.seq
        p.status = wire.E_TIMEOUT
        p.ch = ch
        p.kind = kind
        p.nhead = len(head)
        p.head[:p.nhead] = head
        p.data = data
        p.into = into
        p.n = 0
        p.fast = 0
        p.ev.clear()
        self.pending[p.seq] = p
        self._send_pending(p)
        return p

    def _send_pending(self, p):
        self.send(p.ch, p.kind, p.seq, memoryview(p.head)[:p.nhead], p.data)

    def resend_all(self):
        """A frame was lost: send every unanswered request again now (each at most
        FAST_RESENDS times until its next timed resend)."""
        for p in self.pending.values():
            if not p.ev.is_set() and p.fast < FAST_RESENDS:
                p.fast += 1
                self.retransmits += 1
                self._send_pending(p)

    async def finish(self, p, timeout_ms=10000):
        """Wait for p's response, resending it every retry_ms; return its status
        (E_TIMEOUT if none came within timeout_ms)."""
        waited = 0
        while True:
            step = min(self.retry_ms, timeout_ms - waited)
            try:
                await wait_ms(p.ev.wait(), step)
                break
            except asyncio.TimeoutError:
                waited += step
                if waited >= timeout_ms:
                    self.timeouts += 1
                    break
                self.retransmits += 1
                p.fast = 0
                self._send_pending(p)
        self.pending.pop(p.seq, None)
        st = p.status
        p.into = None
        p.data = b""
        self.free.append(p)
        return st

    # ---- the reader task -------------------------------------------------
    async def run(self):
        port = self.port
        dec = self.dec
        buf = self.rxbuf
        while True:
            n = await port.readinto(buf)
            if not n:
                self.closed = True
                return
            dec.push(buf, n)
            while True:
                fr = dec.pop()
                if dec.rejects:
                    self._answer_rejects()
                if fr is None:
                    break
                self._dispatch(*fr)

    def _answer_rejects(self):
        lost = False
        for ch, kind, seq, st in self.dec.rejects:
            if ch < 0:   # header untrusted: tell the sender, which resends what it awaits
                struct.pack_into(wire.DROPPED_FMT, self.dropped_head, 0, st, 0, 0, 0)
                self.send(wire.CH_LINK, wire.K_DROPPED, 0, self.dropped_head)
                lost = True
            else:
                self.respond(ch, kind, seq, st)
        self.dec.rejects.clear()
        if lost:   # it may have been the answer to one of ours: ask again now
            self.resend_all()

    def _dispatch(self, ch, kind, seq, payload):
        if kind & wire.RESP:
            p = self.pending.get(seq)
            if p is None or p.ev.is_set():
                self.late_responses += 1
                return
            n = len(payload)
            if n < 1:
                p.status = wire.E_BAD_LENGTH
            else:
                p.status = payload[0]
                into = p.into
                if into is not None and n > 1:
                    k = min(n - 1, len(into))
                    into[:k] = payload[1:1 + k]
                    p.n = k
            p.ev.set()
            return
        if ch == wire.CH_LINK or ch == wire.CH_LOG:
            if kind == wire.K_DROPPED:
                self.resend_all()
            elif kind == wire.K_PEER_RESET and len(payload) >= 1:
                # 0xFF: the host reconnected; else peer unit k rebooted
                self.forget_sender(-1 if payload[0] == 0xFF else wire.CH_PEER + payload[0])
            if self.on_frame:
                self.on_frame(ch, kind, seq, payload)
            return
        verdict = self._admit(ch, seq, self.dec.low)
        if verdict != "new":
            if verdict == "stale":
                self.stale_requests += 1
                return
            self.dup_requests += 1
            done = self.recent[(ch << 16) | seq]
            if done is not None:   # answered already: the same answer again
                self.send(ch, kind | wire.RESP, seq, b"", done)
            return
        for w in self.workers:
            if not w.busy:
                w.busy = True
                n = len(payload)
                w.mv[:n] = payload
                w.n = n
                w.ch = ch
                w.kind = kind
                w.seq = seq
                w.ev.set()
                return
        self._forget((ch << 16) | seq)   # not taken: a resend may try again
        self.busy_refused += 1
        self.respond(ch, kind, seq, wire.E_BUSY)

    async def worker(self, w):
        while True:
            await w.ev.wait()
            w.ev.clear()
            try:
                await self.handler(w)
            except Exception as e:  # a handler bug must not kill the board
                self.respond(w.ch, w.kind, w.seq, wire.E_INTERNAL, repr(e).encode())
            w.busy = False

    def counters(self):
        c = self.dec.counters()
        c["tx_frames"] = self.tx_frames
        c["busy_refused"] = self.busy_refused
        c["timeouts"] = self.timeouts
        c["late_responses"] = self.late_responses
        c["retransmits"] = self.retransmits
        c["dup_requests"] = self.dup_requests
        c["stale_requests"] = self.stale_requests
        c["dropped"] = self.dec.dropped()
        return c
