# The board end of the serial link: frame I/O, requests the board makes (drive and
# peer I/O) and requests it serves (host ports, management, peers).
#
# The reader task never waits on anything but the port: responses are copied straight
# into the waiting caller's buffer, and incoming requests are copied into a free
# worker's preallocated buffer (or refused with BUSY), so a full cache can never stall
# the drive responses that would free it.
import asyncio
import struct

from firmware import wire

if hasattr(asyncio, "wait_for_ms"):  # MicroPython
    wait_ms = asyncio.wait_for_ms
    sleep_ms = asyncio.sleep_ms
else:
    async def wait_ms(aw, ms):
        return await asyncio.wait_for(aw, ms / 1000)

    async def sleep_ms(ms):
        await asyncio.sleep(ms / 1000)


class Pending:
    """One outstanding request the board made; preallocated, reused."""

    def __init__(self):
        self.ev = asyncio.Event()
        self.seq = -1
        self.status = 0
        self.into = None   # buffer for response data (after the status byte)
        self.n = 0         # response data bytes copied into `into`


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
    def __init__(self, port, max_payload, nworkers=4, npending=24):
        self.port = port
        self.max_payload = max_payload
        self.enc = wire.Encoder(max_payload)
        self.dec = wire.Decoder(max_payload)
        self.rxbuf = bytearray(1024)
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
        self.tx_frames = 0
        self.busy_refused = 0
        self.timeouts = 0
        self.late_responses = 0
        self.closed = False

    # ---- sending -------------------------------------------------------
    def send(self, ch, kind, seq, head=b"", data=b""):
        self.port.write(self.enc.frame(ch, kind, seq, head, data))
        self.tx_frames += 1

    def respond(self, req_or_ch, kind, seq, status, data=b""):
        self.status1[0] = status
        self.send(req_or_ch, kind | wire.RESP, seq, self.status1, data)

    def log(self, text):
        self.send(wire.CH_LOG, wire.K_LOG, 0, b"", text)

    # ---- requests the board makes --------------------------------------
    def start(self, ch, kind, head, data=b"", into=None):
        """Send a request now and return its Pending (await finish() for the status),
        or None if every Pending is in use.  Never yields: the caller's buffers go out
        exactly as they are at the call (RAID relies on it for data/parity consistency)."""
        if not self.free:
            return None
        p = self.free.pop()
        self.seq = (self.seq + 1) & 0xFFFF
        p.seq = self.seq
        p.status = wire.E_TIMEOUT
        p.into = into
        p.n = 0
        p.ev.clear()
        self.pending[p.seq] = p
        self.send(ch, kind, p.seq, head, data)
        return p

    async def finish(self, p, timeout_ms=10000):
        """Wait for p's response; return its status (E_TIMEOUT if none came)."""
        try:
            await wait_ms(p.ev.wait(), timeout_ms)
        except asyncio.TimeoutError:
            self.timeouts += 1
        self.pending.pop(p.seq, None)
        st = p.status
        p.into = None
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
        for ch, kind, seq, st in self.dec.rejects:
            if ch < 0:
                struct.pack_into(wire.DROPPED_FMT, self.dropped_head, 0, st, 0, 0, 0)
                self.send(wire.CH_LINK, wire.K_DROPPED, 0, self.dropped_head)
            else:
                self.respond(ch, kind, seq, st)
        self.dec.rejects.clear()

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
            if self.on_frame:
                self.on_frame(ch, kind, seq, payload)
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
        c["dropped"] = self.dec.dropped()
        return c
