# Peer channels (one per path to another storage unit): the core's peer layer.
#   handle()         dispatch a request that arrived on a peer channel: PEER subtypes
#                    and whole frame kinds that features claim (u.peer_handlers).
#   request()        one request to another unit, asked again while it answers BUSY.
#   call()/answer()  JSON control messages on a PEER subtype, both sides.
#   find()           discovery: which peer path leads to a unit.
#   PEER_VREAD       a volume block read any unit answers (a unit with no feature for it,
#                    e.g. the old unit a migration pulls from: docs/wire.md).
# A feature uses these instead of its own retry loops; a handler is async fn(u, req, payload).
import json
import struct

from firmware import cha, iopath, wire
from firmware.link import sleep_ms

PEER_PING = 0x01   # answered by every unit: "pong NAME ..."
PEER_VREAD = 0x02  # answered by every unit: vol u16, lba u32, count u16 -> the blocks (host view)
KIND_KEY = 0x100   # u.peer_handlers[KIND_KEY | kind]: a feature's own frame kind on peer channels
# Who owns each PEER subtype and each whole frame kind on peer channels (KIND_KEY | kind):
# one place, so two features can never answer the same frames (docs/wire.md lists them).
# A feature registers only what is listed for it here.
OWNERS = (
    (PEER_PING, PEER_PING, "core"),
    (PEER_VREAD, PEER_VREAD, "core"),
    (0x48, 0x49, "remote_copy"),        # control (JSON), copy data
    (0x50, 0x50, "parity_unit"),        # control (JSON)
    (0x60, 0x60, "mirror"),             # the job chain's messages
    (0x68, 0x6D, "dual"),               # PUT, CLEAN, SM, control, forward, parity log
    (KIND_KEY | wire.K_PBLOCK, KIND_KEY | wire.K_PBLOCK, "parity_unit"),
    (KIND_KEY | wire.K_FC, KIND_KEY | wire.K_FC, "online_backup"),
)


def owner(sub):
    """The owner of a PEER subtype (or KIND_KEY | frame kind), or None."""
    for lo, hi, name in OWNERS:
        if lo <= sub <= hi:
            return name
    return None


TIMEOUT_MS = 5000
TRIES = 200        # BUSY answers (or no free request slot) before a request gives up
RETRY_MS = 2


async def handle(u, req):
    """A request that arrived on a peer channel."""
    p = req.payload()
    if req.kind != wire.K_PEER:
        h = u.peer_handlers.get(KIND_KEY | req.kind)
        if h is None:
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_KIND)
        return await h(u, req, p)
    if len(p) < 1:
        return u.link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    sub = p[0]
    if sub == PEER_PING:
        name = u.board.get("unit", u.board["name"])
        return u.link.respond(req.ch, req.kind, req.seq, wire.OK,
                              b"pong " + name.encode() + b" " + bytes(p[1:]))
    if sub == PEER_VREAD:
        return await _vread(u, req, p)
    h = u.peer_handlers.get(sub)
    if h is None:
        return u.link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_KIND)
    await h(u, req, p)


async def _vread(u, req, p):
    """PEER_VREAD: read volume blocks as a host would (the I/O path's read stages) and
    answer them; the statuses of a host READ."""
    if len(p) != 1 + wire.IO_HEAD_LEN:
        return u.link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    vol, lba, count = struct.unpack_from(wire.IO_HEAD, p, 1)
    v = cha.volume(u, vol)
    out = req.mv[:count * u.bs]   # the head is read: the answer is assembled in the request buffer
    if v is None:
        st = wire.E_NO_VOLUME
    elif count == 0 or lba + count > v["blocks"]:
        st = wire.E_OUT_OF_RANGE
    elif len(out) + 1 > u.link.max_payload:
        st = wire.E_TOO_LONG
    else:
        st = await iopath.read(u, v, lba, count, out)
    u.link.respond(req.ch, req.kind, req.seq, st, out if st == wire.OK else b"")


async def request(u, ch, kind, head, data, into, timeout=TIMEOUT_MS, cnt=None):
    """(status, Pending or None): one request on link channel ch, asked again while the
    answer is BUSY or no request slot is free (cnt["busy_retries"] counts the retries
    when cnt is a dict).  The answer's length is p.n, its data in `into`."""
    link = u.link
    st = wire.E_BUSY
    p = None
    for _ in range(TRIES):
        p = link.start(ch, kind, head, data, into)
        if p is not None:
            st = await link.finish(p, timeout)
            if st != wire.E_BUSY:
                return st, p
        if cnt is not None:
            cnt["busy_retries"] = cnt.get("busy_retries", 0) + 1
        await sleep_ms(RETRY_MS)
    return st, p


async def call(u, k, sub, msg, timeout=TIMEOUT_MS, cnt=None, into=None):
    """A JSON control message (a dict) to PEER subtype `sub` on peer path k:
    (status, reply dict); the reply has "error" when the status is not OK."""
    buf = into if into is not None else bytearray(1024)
    st, p = await request(u, wire.CH_PEER + k, wire.K_PEER, bytes([sub]), json.dumps(msg).encode(), buf,
                          timeout, cnt)
    try:
        r = json.loads(bytes(buf[:p.n])) if (p is not None and p.n) else {}
    except ValueError:
        r = {}
    if not isinstance(r, dict):
        r = {"reply": r}
    if st != wire.OK and "error" not in r:
        r["error"] = "unit on peer %d: %s" % (k, wire.status_name(st))
    return st, r


def decode(u, req, p):
    """The dict of a call() that arrived (p: the PEER payload, subtype first), or None
    after answering BAD_PARAM."""
    try:
        msg = json.loads(bytes(p[1:]))
    except ValueError:
        msg = None
    if not isinstance(msg, dict):
        answer(u, req, wire.E_BAD_PARAM, {"error": "bad control message"})
        return None
    return msg


def answer(u, req, status, obj):
    """The handler side of call(): respond with obj as JSON."""
    u.link.respond(req.ch, req.kind, req.seq, status, json.dumps(obj).encode())


async def find(u, known, key, sub, msg, field, timeout=1000, paths=16):
    """Peer index of the unit known as `key`, or -1.  Asks every path not yet in
    known.values() with call(u, k, sub, msg) and records known[reply[field]] = k."""
    k = known.get(key)
    if k is not None:
        return k
    used = list(known.values())
    for k in range(paths):
        if k in used:
            continue
        st, r = await call(u, k, sub, msg, timeout)
        if st == wire.OK and field in r:
            known[r[field]] = k
    return known.get(key, -1)
