# Parity storage unit (seed 000): the one block-transfer loop of the PU.  Every procedure
# that moves blocks is "for each block number n: pull the copies of block n from the
# units concerned (asked again while BUSY), then, under the PU's lock, combine them with
# P[n]": the build (S1009-S1014), the sequential add (S4010-S4015), the delete
# (S9001-S9006), the recomputations after a reset or a write in doubt, the restoration
# (S7002-S7007 / S8002-S8007, which then pushes the result to the failed unit) and the
# PU's own rebuild (I14).
from firmware import core, wire
from firmware.features.parity_unit import exchange
from firmware.features.parity_unit.state import HL
from firmware.raid import GOOD


def buffers(pu, k):
    """Request heads and answer buffers for k sources."""
    L = pu.L
    return ([memoryview(bytearray(HL)) for _ in range(k)],
            [memoryview(bytearray(HL + L)) for _ in range(k)])


async def read_p(pu, n, into):
    s = await pu.io(n, into, False)
    if s not in GOOD:
        raise Exception("parity block %d unreadable: %s" % (n, wire.status_name(s)))


async def blocks(pu, job, numbers, srcs_of, op, fold, consistent, push=None, nsrc=1, skip=None):
    """For each n in `numbers` (but those skip(n) says to leave): srcs = srcs_of(n)
    ([(unit, peer[, op])]), their copies pulled into bufs[i][HL:] (nsrc buffers: the most
    sources a block has), then `await fold(n, srcs, bufs)` under the PU's lock, then
    `await push(n, srcs)` (if given) after it.
    consistent: P[n] must not change between the pulls and the fold (the fold assigns
    from P[n] and the copies, e.g. a restoration): a block whose P[n] changed meanwhile
    (per-block counter pu.ver) or whose sources changed is pulled again.  Without it the
    fold only XORs copies into P[n], which commutes with the deltas.
    job: gated before each block, its pointer moved after (None: no job)."""
    reqs, bufs = buffers(pu, nsrc)
    for n in numbers:
        if job is not None:
            await job.gate()
        while skip is None or not skip(n):
            v0 = pu.ver[n]
            srcs = srcs_of(n)
            s = await exchange.pull(pu, srcs, n, op, reqs, bufs)
            if s != wire.OK:
                raise Exception("block %d: %s" % (n, wire.status_name(s)))
            await pu.lock.acquire()
            if not consistent or (pu.ver[n] == v0 and srcs == srcs_of(n)):
                try:
                    await fold(n, srcs, bufs)
                finally:
                    pu.lock.release()
                if push is not None:
                    await push(n, srcs)
                break
            pu.lock.release()
            pu.cnt["retries"] += 1
        if job is not None:
            job.pointer = n + 1


def xor_copies(p, srcs, bufs, without=None):
    """p ^= the copies of srcs (except unit `without`'s)."""
    for i in range(len(srcs)):
        if srcs[i][0] != without:
            core.xor_acc(p, bufs[i][HL:])
