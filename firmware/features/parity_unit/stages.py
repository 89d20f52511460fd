# Parity storage unit (seed 000): the stages a DU adds to the I/O path (firmware/iopath.py).
#   check         PU: its parity area is not its hosts' to write; DU being restored: no I/O
#   before_cache  DU: the Fig 27 write delta, under the unit's lock until Dnew is stored:
#                 read Dold through the read path (S6001), X = Dold ^ Dnew (S6002), a
#                 pending-delta record saved in SM, X sent to the PU (S6003-S6006)
#   after_commit  DU: Dnew is in the cache; the pending record is dropped
#   read_check    DU being restored: no I/O until its data is back
#   after_read    DU, random method with read-send (Fig 23 / Fig 26 option): the blocks
#                 read go to the PU
# A delta and its data write are one recoverable step: a block whose record is still
# pending at the next boot (the board died between them), whose delta failed, or that
# was in flight while the PU restarted is "in doubt", and the PU recomputes P[n] from
# the units' copies (control message "recompute") until it has.
import asyncio

from firmware import core, store, wire
from firmware.features.parity_unit import exchange
from firmware.features.parity_unit.state import HL
from firmware.link import sleep_ms
from firmware.raid import GOOD

HOLDS = ("before_delta", "after_delta", "after_cache")


def needs_delta(pu, n):
    """I8: during a sequential transfer only blocks already sent (build / add) or not yet
    sent (delete) carry a delta; a member otherwise always sends one."""
    st = pu.st
    if not st["member"] or n >= pu.nb:
        return False
    op = st["op"]
    if op == "build" or op == "add":
        return n < st["sent"]
    if op == "delete":
        return n >= st["sent"]
    return True


def touched(pu, v, lba, count):
    """(parity block n, first area block of the request in it, blocks) of a request."""
    m = pu.m
    a0 = pu.vstart[v["id"]] + lba
    out = []
    i = 0
    while i < count:
        ab = a0 + i
        n = ab // m
        k = min(count - i, (n + 1) * m - ab)
        out.append((n, i, ab - n * m, k))
        i += k
    return out


async def check(u, v, lba, count, data, pu=None):
    st = pu.st
    if pu.role == "parity":
        return wire.E_STATE if st["t720"] is not None else None
    return wire.E_STATE if st["restoring"] else None


async def read_check(u, v, lba, count, out, pu=None):
    return wire.E_STATE if (pu.role == "data" and pu.st["restoring"]) else None


async def hold(pu, point):
    """parity_hold: the next host write waits here (the board is killed meanwhile)."""
    if pu.held == point:
        pu.held = "holding " + point
        pu.hold_ev = asyncio.Event()
        await pu.hold_ev.wait()


async def delta(u, v, lba, count, data, pu=None):
    st = pu.st
    bs = u.bs
    todo = [t for t in touched(pu, v, lba, count) if needs_delta(pu, t[0])]
    if not todo:
        return None
    mine = [t[0] for t in todo]
    st["pending"].extend(mine)
    pu.save()                      # the records are on the board before a delta leaves
    await hold(pu, "before_delta")
    sent = []
    for n, i, off, k in todo:
        f = pu.fbuf
        x = f[HL:HL + pu.L]
        x[:] = pu.zeros
        old = pu.obuf
        for j in range(k):
            s = await store.read_vol(u, v, lba + i + j, 1, old)                     # S6001
            if s not in GOOD:
                return fail(pu, mine, sent, s)
            a = (off + j) * bs
            core.xor_into(x[a:a + bs], [old, data[(i + j) * bs:(i + j + 1) * bs]])  # S6002
        r0 = pu.pu_resets
        s, off_flag = await exchange.send_block(pu, st["pu_peer"], n, st["pu"], wire.PB_HOST,
                                                wire.PB_OP_NONE, f)                  # S6003
        sent.append(n)
        if s != wire.OK or pu.pu_resets != r0:
            # the PU may have applied this delta and lost the answer, or applied it before
            # a reset and again after: P[n] is in doubt
            doubt(pu, [n])
        if s != wire.OK:
            return fail(pu, mine, sent, s)
        pu.cnt["deltas_sent"] += 1
        if off_flag and st["op"] == "random":
            st["op"] = None
            u.sm.dirty = True
        await hold(pu, "after_delta")
    pu.inflight[id(data)] = mine   # this request's records, dropped once Dnew is stored
    return None


def fail(pu, mine, sent, s):
    """The write ends without storing Dnew: the deltas it sent are in parity for data
    that never arrived; those blocks are recomputed."""
    done(pu, mine)
    if sent:
        doubt(pu, sent)
    return s


def done(pu, blocks):
    """Drop the records of these blocks, saved at once: a record left over would have the
    block recomputed at the next boot from whatever the unit then holds (nothing, if
    its data was lost with the board)."""
    p = pu.st["pending"]
    for n in blocks:
        if n in p:
            p.remove(n)
    pu.save()


async def committed(u, v, lba, count, data, pu=None):
    sent = pu.inflight.pop(id(data), None)
    if sent:
        await hold(pu, "after_cache")
        done(pu, sent)
    return None


async def read_send(u, v, lba, count, out, pu=None):
    """Fig 23 / Fig 26 option: a host read sends the blocks it touches to the PU."""
    st = pu.st
    a0 = pu.vstart[v["id"]] + lba
    first = a0 // pu.m
    last = min((a0 + count - 1) // pu.m, pu.nb - 1)
    for n in range(first, last + 1):
        if st["op"] != "random":
            break
        f = pu.fbuf
        if await pu.io(n, f[HL:HL + pu.L], False) not in GOOD:
            break
        s, off_flag = await exchange.send_block(pu, st["pu_peer"], n, st["pu"], wire.PB_PARITY,
                                                wire.PB_OP_READSEND, f)
        if s != wire.OK:
            break
        if off_flag and st["op"] == "random":
            st["op"] = None
            u.sm.dirty = True


# ---- DU: parity blocks in doubt -------------------------------------------------------
def on_frame(pu, ch, kind, seq, payload):
    """Link frames that are not requests: PEER_RESET from the PU's path means the PU's
    board restarted."""
    if kind == wire.K_PEER_RESET and len(payload) >= 1 and payload[0] == pu.st["pu_peer"]:
        pu.pu_resets += 1


def doubt(pu, blocks):
    st = pu.st
    d = st["doubt"]
    for n in blocks:
        if n not in d:
            d.append(n)
    pu.save()
    if not pu.resolving:
        pu.resolving = True
        pu.reg.task(resolve(pu))


def reconcile(pu):
    """Boot of a DU: a block whose pending-delta record survived the reset may have its
    delta in parity without its data (or the other way round): in doubt."""
    st = pu.st
    if st["pending"]:
        pu.cnt["pending_reconciled"] += len(st["pending"])
        pu.u.warn("parity unit: %d write deltas were pending at the reset; their parity blocks are recomputed"
                  % len(st["pending"]))
        blocks = []
        for n in st["pending"]:
            if n not in blocks:
                blocks.append(n)
        st["pending"] = []
        doubt(pu, blocks)
    elif st["doubt"] and not pu.resolving:
        pu.resolving = True
        pu.reg.task(resolve(pu))


async def resolve(pu):
    """Ask the PU to recompute the blocks in doubt (outside this unit's lock: the PU
    pulls this unit's copy) until it has done so."""
    st = pu.st
    try:
        while st["doubt"] and st["member"] and pu.u.sm.t.get("parity") is st:
            blocks = list(st["doubt"])
            s, _ = await exchange.ctrl(pu, st["pu_peer"], {"m": "recompute", "unit": pu.me, "blocks": blocks})
            if s == wire.OK:
                st["doubt"] = [n for n in st["doubt"] if n not in blocks]
                pu.save()
            else:
                await sleep_ms(300)
    finally:
        pu.resolving = False


def register(pu, reg):
    def bind(fn):
        async def stage(u, v, lba, count, buf):
            return await fn(u, v, lba, count, buf, pu)
        return stage

    def writes(v):
        return pu.role == "data" and pu.st["member"] and pu.m > 0

    def sends(v):
        st = pu.st
        return pu.role == "data" and st["member"] and st["op"] == "random" and st["read_send"] and pu.m > 0

    reg.stage("check", bind(check))
    reg.stage("before_cache", bind(delta), lock=pu.lock, when=writes)
    reg.stage("after_commit", bind(committed), when=writes)
    reg.stage("read_check", bind(read_check))
    reg.stage("after_read", bind(read_send), lock=pu.lock, when=sends)
    reg.frame_observer(lambda ch, kind, seq, payload: on_frame(pu, ch, kind, seq, payload))
