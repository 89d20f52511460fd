# The wire format, shared by the firmware and the host harness (one source of truth).
#
#   frame on the wire:  COBS( header | payload | crc32 ) 0x00
#   header (8 bytes, little endian): channel u8, kind u8, seq u16, len u16, low u16
#   low: the oldest request seq the sender is still waiting on (everything it sent
#   before that is answered), so a receiver can drop late copies of old requests
#   crc32: binascii.crc32 over header + payload, little endian u32
#
# A response carries its request's kind with RESP set and the request's seq.
# Every response payload starts with one status byte.  docs/wire.md lists every
# frame kind and its fields.
import binascii
import struct

from firmware import core

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

HDR = "<BBHHH"
HDR_LEN = const(8)
CRC_LEN = const(4)
OVERHEAD = const(12)  # header + crc
MAX_PAYLOAD = const(65535)

# Channels: a group base plus an index.
CH_HOST = const(0x00)   # host ports 0..31
CH_DRIVE = const(0x20)  # drives 0..63
CH_PEER = const(0x60)   # peer units 0..15
CH_MGMT = const(0x70)   # service processor / management terminal
CH_LOG = const(0x71)    # log and trace records from the board
CH_LINK = const(0x72)   # link control: reports of frames that were dropped

# Kinds.  Requests have RESP clear; a response is kind | RESP.
RESP = const(0x80)
K_READ = const(0x01)     # host port: vol u16, lba u32, count u16 -> status, data
K_WRITE = const(0x02)    # host port: vol u16, lba u32, count u16, data -> status
K_FLUSH = const(0x03)    # host port: vol u16 -> status   (destage the volume's dirty slots)
K_VOLINFO = const(0x04)  # host port: vol u16 -> status, blocks u32, block_size u32
K_DREAD = const(0x11)    # drive: lba u32, count u16 -> status, data
K_DWRITE = const(0x12)   # drive: lba u32, count u16, data -> status
K_PEER = const(0x21)     # peer unit: opaque payload -> status, opaque payload
K_PBLOCK = const(0x22)   # peer unit: parity block transfer (seed 000 Fig 33) -> status [, frame]
K_FC = const(0x23)       # online backup (seed 004): an FC-style port frame, FC_HEAD then data -> status [, data]
K_MGMT = const(0x31)     # management: JSON command -> status, JSON reply
K_LOG = const(0x41)      # log: JSON record (no response)
K_PEER_RESET = const(0x7D)  # link: peer u8 (0xFF: the host): it restarted its numbering (no response)
K_DROPPED = const(0x7E)  # link: reason u8, channel u8, kind u8, seq u16 (no response)
K_HELLO = const(0x7F)    # link: board announces itself after boot: JSON (no response)

# (kind, name) pairs: a constant tuple, which a frozen firmware keeps in flash (a dict
# would be built in RAM at import)
KINDS = (
    (K_READ, "READ"), (K_WRITE, "WRITE"), (K_FLUSH, "FLUSH"), (K_VOLINFO, "VOLINFO"), (K_DREAD, "DREAD"),
    (K_DWRITE, "DWRITE"), (K_PEER, "PEER"), (K_PBLOCK, "PBLOCK"), (K_FC, "FC"), (K_MGMT, "MGMT"),
    (K_LOG, "LOG"), (K_PEER_RESET, "PEER_RESET"), (K_DROPPED, "DROPPED"), (K_HELLO, "HELLO"),
)
# Which request kinds each channel group accepts.
_HOST_KINDS = (K_READ, K_WRITE, K_FLUSH, K_VOLINFO)
_DRIVE_KINDS = (K_DREAD, K_DWRITE)
_PEER_KINDS = (K_PEER, K_PBLOCK, K_FC)

# Status codes (first payload byte of every response).
OK = const(0x00)
RECOVERED = const(0x01)      # data good after a recovered (corrected) error
E_UNKNOWN_KIND = const(0x10)
E_BAD_LENGTH = const(0x11)
E_BAD_CRC = const(0x12)
E_OUT_OF_RANGE = const(0x13)
E_NO_VOLUME = const(0x14)
E_BAD_PARAM = const(0x15)
E_BUSY = const(0x16)
E_STATE = const(0x17)
E_UNKNOWN_CHANNEL = const(0x18)
E_BAD_FRAME = const(0x19)    # not valid COBS, or too short to hold a header
E_TOO_LONG = const(0x1A)     # longer than the receiver's frame buffer
E_MEDIUM = const(0x20)       # unrecoverable read error
E_WRITE_FAULT = const(0x21)
E_NOT_READY = const(0x22)    # drive failed / absent
E_TIMEOUT = const(0x23)
E_PATH_DOWN = const(0x24)
E_DATA_LOST = const(0x25)    # no redundancy left to rebuild the data
E_CHECK = const(0x26)        # mirror (seed 002): check report, the write was not done on either volume
E_RESERVATION_CONFLICT = const(0x27)   # mirror (seed 002): the volume is reserved by another host
E_LOGIN_REFUSED = const(0x28)   # online backup (seed 004): Login refused (not on the allow-list, or port role)
E_NOT_LOGGED_IN = const(0x29)   # online backup (seed 004): a command from a peer with no session on that port
E_NO_SPACE = const(0x2A)      # LDEV layer: too few free LDEVs for the request
E_COPY_IMPOSSIBLE = const(0x2B)   # remote copy (seed 003 410): "impossible to generate a copy" (space, emulation)
E_NO_TABLE = const(0x2C)      # remote copy (seed 003 E5): the pool of group / pair tables is empty
E_WRITE_PROTECTED = const(0x2D)   # remote copy: a copy destination refuses host writes until takeover
E_CONFLICT = const(0x2E)      # remote copy: an area overlapping (or sharing an LDEV / group with) another
E_INTERNAL = const(0x30)

STATUS = (   # (status, name) pairs, as KINDS
    (OK, "OK"), (RECOVERED, "RECOVERED"), (E_UNKNOWN_KIND, "UNKNOWN_KIND"), (E_BAD_LENGTH, "BAD_LENGTH"),
    (E_BAD_CRC, "BAD_CRC"), (E_OUT_OF_RANGE, "OUT_OF_RANGE"), (E_NO_VOLUME, "NO_VOLUME"),
    (E_BAD_PARAM, "BAD_PARAM"), (E_BUSY, "BUSY"), (E_STATE, "STATE"), (E_UNKNOWN_CHANNEL, "UNKNOWN_CHANNEL"),
    (E_BAD_FRAME, "BAD_FRAME"), (E_TOO_LONG, "TOO_LONG"), (E_MEDIUM, "MEDIUM_ERROR"),
    (E_WRITE_FAULT, "WRITE_FAULT"), (E_NOT_READY, "NOT_READY"), (E_TIMEOUT, "TIMEOUT"),
    (E_PATH_DOWN, "PATH_DOWN"), (E_DATA_LOST, "DATA_LOST"), (E_CHECK, "CHECK"),
    (E_RESERVATION_CONFLICT, "RESERVATION_CONFLICT"), (E_LOGIN_REFUSED, "LOGIN_REFUSED"),
    (E_NOT_LOGGED_IN, "NOT_LOGGED_IN"), (E_NO_SPACE, "NO_SPACE"), (E_COPY_IMPOSSIBLE, "COPY_IMPOSSIBLE"),
    (E_NO_TABLE, "NO_TABLE"), (E_WRITE_PROTECTED, "WRITE_PROTECTED"), (E_CONFLICT, "CONFLICT"),
    (E_INTERNAL, "INTERNAL"),
)

# Fixed request heads.
IO_HEAD = "<HIH"     # vol, lba, count   (host READ / WRITE)
IO_HEAD_LEN = const(8)
DIO_HEAD = "<IH"     # lba, count        (drive DREAD / DWRITE)
DIO_HEAD_LEN = const(6)
DROPPED_FMT = "<BBBH"
# PBLOCK (Fig 33): parity block number, then the status information, then the data.
PBLK_HEAD = "<IBBBBH"   # block u32, dst u8, src u8, flags u8, op u8, length u16
PBLK_HEAD_LEN = const(10)
PB_PARITY = const(0x01)   # data used to create parity data
PB_HOST = const(0x02)     # data updated by the host: the write delta Dold ^ Dnew
PB_REQUEST = const(0x04)  # asks the receiver for its copy of the block (no data)
# PBLOCK op: the procedure a frame belongs to
PB_OP_NONE = const(0)
PB_OP_BUILD = const(1)    # synchronous initial build (Fig 14 / Fig 21)
PB_OP_ADD = const(2)      # asynchronous add, sequential (Fig 24)
PB_OP_DELETE = const(3)   # asynchronous delete (Fig 32)
PB_OP_RESTORE = const(4)  # restoration (Fig 28 / Figs 30-31)
PB_OP_REBUILD = const(5)  # rebuild of the parity unit
PB_OP_READSEND = const(6)  # random method: a host read sends the block (Fig 23 / Fig 26 option)
# FC (seed 004): op, source AL-PA, destination AL-PA, flags, LU, LBA (BACKUP: the destination), count
FC_HEAD = "<BBBBHIH"
FC_HEAD_LEN = const(12)


def _name(pairs, code):
    for c, name in pairs:
        if c == code:
            return name
    return "0x%02x" % code


def status_name(st):
    return _name(STATUS, st)


def kind_name(kind):
    base = _name(KINDS, kind & 0x7F)
    return base + ".resp" if kind & RESP else base


def channel_name(ch):
    if ch < CH_DRIVE:
        return "host%d" % ch
    if ch < CH_PEER:
        return "drive%d" % (ch - CH_DRIVE)
    if ch < CH_MGMT:
        return "peer%d" % (ch - CH_PEER)
    return {CH_MGMT: "mgmt", CH_LOG: "log", CH_LINK: "link"}.get(ch, "ch0x%02x" % ch)


def kind_allowed(ch, kind):
    """True if a frame of this kind may travel on this channel."""
    k = kind & 0x7F
    if ch < CH_DRIVE:
        return k in _HOST_KINDS
    if ch < CH_PEER:
        return k in _DRIVE_KINDS
    if ch < CH_MGMT:
        return k in _PEER_KINDS
    if ch == CH_MGMT:
        return k == K_MGMT
    if ch == CH_LOG:
        return kind == K_LOG
    if ch == CH_LINK:
        return kind == K_DROPPED or kind == K_HELLO or kind == K_PEER_RESET
    return False


def known_channel(ch):
    return ch <= CH_LINK


def stale(seq, low):
    """True if request seq was sent before low (its sender has its answer)."""
    behind = (low - seq) & 0xFFFF
    return 0 < behind < 0x8000


def pack(ch, kind, seq, payload=b"", low=-1):
    """One complete frame (COBS + delimiter) as bytes.  Allocates: host side and tests.
    low defaults to seq (nothing older is claimed answered)."""
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueError("payload of %d bytes exceeds %d" % (n, MAX_PAYLOAD))
    raw = bytearray(HDR_LEN + n + CRC_LEN)
    struct.pack_into(HDR, raw, 0, ch, kind, seq & 0xFFFF, n, (seq if low < 0 else low) & 0xFFFF)
    raw[HDR_LEN:HDR_LEN + n] = payload
    crc = binascii.crc32(memoryview(raw)[:HDR_LEN + n]) & 0xFFFFFFFF
    struct.pack_into("<I", raw, HDR_LEN + n, crc)
    enc = bytearray(core.cobs_max(len(raw)) + 1)
    m = core.cobs_encode(raw, enc)
    enc[m] = 0
    return bytes(enc[:m + 1])


class Encoder:
    """Builds frames in one preallocated buffer (firmware hot path: no allocation per
    frame).  The raw frame is assembled at the buffer's tail and COBS-encoded onto its
    start: the encoder's output runs ahead of its input by at most the COBS overhead,
    which is the gap left in front of the raw frame, so it never overwrites a byte it
    has still to read."""

    def __init__(self, max_payload):
        self.max_payload = max_payload
        cap = HDR_LEN + max_payload + CRC_LEN
        self.enc = bytearray(core.cobs_max(cap) + 1)
        self.encmv = memoryview(self.enc)
        self.off = core.cobs_max(cap) - cap       # the raw frame starts here
        self.rawmv = self.encmv[self.off:self.off + cap]

    def frame(self, ch, kind, seq, head=b"", data=b"", low=-1):
        """Encode header | head | data | crc; return a memoryview valid until the next call."""
        nh = len(head)
        n = nh + len(data)
        if n > self.max_payload:
            raise ValueError("payload of %d bytes exceeds %d" % (n, self.max_payload))
        raw = self.rawmv
        o = self.off
        struct.pack_into(HDR, self.enc, o, ch, kind, seq & 0xFFFF, n, (seq if low < 0 else low) & 0xFFFF)
        if nh:
            raw[HDR_LEN:HDR_LEN + nh] = head
        if n > nh:
            raw[HDR_LEN + nh:HDR_LEN + n] = data
        crc = binascii.crc32(raw[:HDR_LEN + n]) & 0xFFFFFFFF
        struct.pack_into("<I", self.enc, o + HDR_LEN + n, crc)
        m = core.cobs_encode(raw[:HDR_LEN + n + CRC_LEN], self.enc)
        self.enc[m] = 0
        return self.encmv[:m + 1]


class Decoder:
    """Splits a byte stream into frames and checks them.

    push(data) buffers bytes; pop() returns (ch, kind, seq, payload) for the next good
    frame, or None when no complete frame is buffered.  payload is a memoryview valid
    until the next pop(); `low` holds that frame's low-water seq.  A frame that fails a
    check is dropped and counted, and listed in `rejects` as (ch, kind, seq, status) so
    the receiver can tell the sender: ch is -1 when the header cannot be trusted (bad
    COBS, bad CRC, too long) and the sender gets a DROPPED notice on the link channel;
    otherwise it gets a response with that status.
    """

    def __init__(self, max_payload):
        self.max_payload = max_payload
        cap = core.cobs_max(HDR_LEN + max_payload + CRC_LEN) + 1
        self.acc = bytearray(cap)        # bytes of the frame being received
        self.accmv = memoryview(self.acc)
        self.n = 0
        self.overflow = False
        self.chunk = b""                 # received bytes not yet split
        self.off = 0
        self.end = 0
        # decoded in place: COBS output never runs ahead of its input, so the frame's
        # bytes and the decoded frame share one buffer (one frame's worth of RAM)
        self.raw = self.acc
        self.rawmv = self.accmv
        self.rejects = []
        self.low = 0
        # counters
        self.frames = 0
        self.bad_cobs = 0
        self.bad_crc = 0
        self.bad_len = 0
        self.unknown_kind = 0
        self.unknown_channel = 0
        self.too_long = 0

    def counters(self):
        return {
            "frames": self.frames, "bad_cobs": self.bad_cobs, "bad_crc": self.bad_crc,
            "bad_len": self.bad_len, "unknown_kind": self.unknown_kind,
            "unknown_channel": self.unknown_channel, "too_long": self.too_long,
        }

    def dropped(self):
        return (self.bad_cobs + self.bad_crc + self.bad_len + self.unknown_kind
                + self.unknown_channel + self.too_long)

    def push(self, data, n=-1):
        """Hand over received bytes (data[:n]); pop() until None before the next push."""
        self.chunk = data
        self.off = 0
        self.end = len(data) if n < 0 else n

    def pop(self):
        data = self.chunk
        end = self.end
        while self.off < end:
            off = self.off
            z = data.find(b"\x00", off, end)
            if z < 0:
                self._take(data, off, end)
                self.off = end
                return None
            self._take(data, off, z)
            self.off = z + 1
            fr = self._finish()
            if fr is not None:
                return fr
        return None

    def _take(self, data, a, b):
        """Append data[a:b] to the frame being received."""
        k = b - a
        if k <= 0 or self.overflow:
            return
        if self.n + k > len(self.acc):
            self.overflow = True
            return
        self.acc[self.n:self.n + k] = memoryview(data)[a:b]
        self.n += k

    def _finish(self):
        n = self.n
        over = self.overflow
        self.n = 0
        self.overflow = False
        if over:
            self.too_long += 1
            self.rejects.append((-1, 0, 0, E_TOO_LONG))
            return None
        if n == 0:
            return None  # empty frame: idle fill between frames, not an error
        m = core.cobs_decode(self.accmv[:n], self.raw)
        if m < 0 or m < OVERHEAD:
            self.bad_cobs += 1
            self.rejects.append((-1, 0, 0, E_BAD_FRAME))
            return None
        raw = self.rawmv
        crc = struct.unpack_from("<I", self.raw, m - CRC_LEN)[0]
        if binascii.crc32(raw[:m - CRC_LEN]) & 0xFFFFFFFF != crc:
            self.bad_crc += 1
            self.rejects.append((-1, 0, 0, E_BAD_CRC))
            return None
        ch, kind, seq, ln, low = struct.unpack_from(HDR, self.raw, 0)
        self.low = low
        if ln != m - OVERHEAD:
            self.bad_len += 1
            if not kind & RESP:
                self.rejects.append((ch, kind, seq, E_BAD_LENGTH))
            return None
        if kind & RESP:
            # a response may carry any channel and kind: it answers a request this side
            # sent, possibly one the other side refused as unknown
            self.frames += 1
            return ch, kind, seq, raw[HDR_LEN:HDR_LEN + ln]
        if not known_channel(ch):
            self.unknown_channel += 1
            self.rejects.append((ch, kind, seq, E_UNKNOWN_CHANNEL))
            return None
        if not kind_allowed(ch, kind):
            self.unknown_kind += 1
            self.rejects.append((ch, kind, seq, E_UNKNOWN_KIND))
            return None
        self.frames += 1
        return ch, kind, seq, raw[HDR_LEN:HDR_LEN + ln]
