# Parity storage unit (seed 000): the PU's long procedures, each a job that pulls
# blocks through transfer.blocks(): build (Fig 14 / Fig 21: S1009-S1014), sequential add
# (Fig 24: S4010-S4015), delete (Fig 32: S9001-S9006), restoration (Fig 28: S7002-S7007,
# Figs 30-31: S8002-S8007, I12), the PU's own rebuild (I14), the recomputation of blocks
# in doubt, and after a board reset each one going on from table 740 or its pointer.
from firmware import core, wire
from firmware.clock import ticks_diff, ticks_ms
from firmware.features.parity_unit import exchange, rows, transfer
from firmware.features.parity_unit.state import HL
from firmware.jobs import DONE, FAILED, Job

OPS = {"build": wire.PB_OP_BUILD, "add": wire.PB_OP_ADD, "delete": wire.PB_OP_DELETE}
MAX_LIST = 64                   # block numbers listed in a reply


def run_job(pu, name, kind, total, paused, fn, pointer=0):
    job = pu.u.jobs.add(Job(name, kind, total, pointer, bool(paused)))
    pu.jobs_running[name] = job
    job.persist = {}     # mgmt saves SM on pause / resume; sync() records the flag
    pu.save()
    pu.reg.task(_run(pu, job, fn))
    return name


async def _run(pu, job, fn):
    try:
        await fn(job)
        job.state = DONE
    except Exception as e:  # a failed procedure is reported, not fatal
        job.state = FAILED
        job.note = "%s" % (e.args[0] if e.args else repr(e))
        pu.u.warn("parity unit: %s failed: %s" % (job.name, job.note))
        st = pu.st
        st["busy"] = None
        st["rebuilding"] = False
        st["restore"] = None
        pu.save()
    pu.jobs_running.pop(job.name, None)


def included_srcs(pu, units, peers):
    """srcs_of(n): every unit whose contribution to P[n] is in parity and has block n."""
    def srcs_of(n):
        out = []
        for x in units:
            r = rows.row(pu, x)
            if n < r["blocks"] and rows.included(pu, r, n):
                out.append((x, peers[x]))
        return out
    return srcs_of


async def assign(pu, job, numbers, srcs_of, minus=None, then=None):
    """P[n] = XOR of the copies of srcs_of(n) (without unit `minus`), P[n] unchanged
    between the pulls and the store; then(n) under the lock after each block."""
    async def fold(n, srcs, bufs):
        p = pu.pbuf
        p[:] = pu.zeros
        transfer.xor_copies(p, srcs, bufs, minus)
        await pu.write_p(n, p)
        pu.cnt["copies_applied"] += len(srcs)
        if then is not None:
            then(n)
    await transfer.blocks(pu, job, numbers, srcs_of, wire.PB_OP_REBUILD, fold, True,
                          nsrc=max(1, len(rows.members(pu))))


async def accumulate(pu, job, end, srcs, op, rws, on):
    """Blocks 0..end-1 of the units of rows rws (their peers in srcs): every unit with
    block n sends it and P[n] ^= the copy, its contribution coming in (on: build, add)
    or going out where it was included (not on: delete, I11); 740 follows."""
    by = {}
    for r in rws:
        by[r["unit"]] = r

    def srcs_of(n):
        return [srcs[i] for i in range(len(rws)) if n < rws[i]["blocks"]]

    async def fold(n, got, bufs):
        p = pu.pbuf
        read = False
        for i in range(len(got)):
            r = by[got[i][0]]
            if on or rows.included(pu, r, n):
                if not read:
                    await transfer.read_p(pu, n, p)
                    read = True
                core.xor_acc(p, bufs[i][HL:])                      # S1011 / S4012 / S9003
                rows.include(pu, r, n, on)                         # S1013 / S4014 / S9005
                pu.cnt["copies_applied"] += 1
            r["pos"] = n + 1
        if read:
            await pu.write_p(n, p)                                 # S1012 / S4013 / S9004
    await transfer.blocks(pu, job, range(end), srcs_of, op, fold, False, nsrc=len(rws))


async def recompute(pu, job, first, end, plus, minus):
    """A build / add / delete after a reset, blocks first..end-1: P[n] = XOR of the
    copies of every member whose contribution is in parity, with the units in `plus`
    (build, add) and without `minus` (delete); then 740 as the job would leave it.  Each
    unit the job works on is pulled with the job's op so its I8 pointer moves on; the
    others as for a rebuild."""
    units = rows.members(pu)
    peers = dict(await exchange.peers_of(pu, units))
    ops = {}
    for x in units:
        r = rows.row(pu, x)
        mine = x in plus or x == minus
        ops[x] = OPS[r["op"]] if (mine and r["on"] and r["op"] in OPS) else wire.PB_OP_REBUILD

    def srcs_of(n):
        out = []
        for x in units:
            r = rows.row(pu, x)
            if n < r["blocks"] and (x in plus or x == minus or rows.included(pu, r, n)):
                out.append((x, peers[x], ops[x]))
        return out

    def then(n):
        for x in plus + ([minus] if minus is not None else []):
            r = rows.row(pu, x)
            if n < r["blocks"]:
                rows.include(pu, r, n, x != minus)
                r["pos"] = n + 1
    await assign(pu, job, range(first, end), srcs_of, minus, then)


async def j_build(pu, job, resume=None):
    """S1009-S1014: every DU sends block n; P[n] = XOR of the copies.  resume: the block
    to go on from after a reset (each block recomputed)."""
    rws = list(pu.st["t740"]["rows"])
    srcs = await exchange.peers_of(pu, [r["unit"] for r in rws])
    if resume is not None:
        await recompute(pu, job, resume, pu.nb, [r["unit"] for r in rws], None)
    else:
        await accumulate(pu, job, pu.nb, srcs, wire.PB_OP_BUILD, rws, True)    # S1010-S1012
    for r in rws:                                                           # S1014 (13A: all OFF)
        rows.row_off(pu, r)
    pu.st["busy"] = None
    pu.save()
    for _, k in srcs:
        await exchange.ctrl(pu, k, {"m": "done"})
    job.note = "%d parity blocks from %d units" % (pu.nb, len(rws))
    pu.u.warn("parity unit: synchronous initial copy complete (%d blocks)" % pu.nb)


async def j_add(pu, job, unit, resume=None):
    """S4010-S4015: the added DU sends its blocks; P[n] ^= copy."""
    r = rows.row(pu, unit)
    srcs = await exchange.peers_of(pu, [unit])
    if resume is not None:
        await recompute(pu, job, resume, r["blocks"], [unit], None)
    else:
        await accumulate(pu, job, r["blocks"], srcs, wire.PB_OP_ADD, [r], True)    # S4011-S4014
    rows.row_off(pu, r)                                                         # S4015
    pu.st["busy"] = None
    pu.save()
    await exchange.ctrl(pu, srcs[0][1], {"m": "done"})
    job.note = "unit %d added (%d blocks)" % (unit, r["blocks"])
    pu.u.warn("parity unit: unit %d added" % unit)


async def j_delete(pu, job, unit, resume=None):
    """S9001-S9006: the deleted DU sends every block; P[n] ^= copy where its
    contribution was included (I11)."""
    st = pu.st
    r = rows.row(pu, unit)
    srcs = await exchange.peers_of(pu, [unit])
    if resume is not None:
        await recompute(pu, job, resume, r["blocks"], [], unit)
    else:
        await accumulate(pu, job, r["blocks"], srcs, wire.PB_OP_DELETE, [r], False)  # S9002-S9005
    st["t710"]["data_units"].remove(unit)                                     # S9006 (I11)
    st["t730"] = [x for x in st["t730"] if x["unit"] != unit]
    st["t740"]["rows"] = [x for x in st["t740"]["rows"] if x["unit"] != unit]
    pu.bm.pop(unit, None)
    st["busy"] = None
    pu.save()
    await exchange.ctrl(pu, srcs[0][1], {"m": "left"})
    job.note = "unit %d deleted" % unit
    pu.u.warn("parity unit: unit %d deleted" % unit)


async def j_restore(pu, job, unit, method, k, first=0):
    """S7002-S7007 / S8002-S8007 (restoring during an add: blocks already updated include
    the added unit, the others exclude it, I12).  first: the saved pointer after a reset
    (restored blocks are written again: the same data)."""
    st = pu.st
    rs = st["restore"]
    t0 = ticks_ms() - rs.get("ms", 0)
    others = [x for x in rows.members(pu) if x != unit]
    peers = dict(await exchange.peers_of(pu, others))
    kf = await exchange.peer(pu, unit)
    rf = rows.row(pu, unit)
    f = memoryview(bytearray(HL + pu.L))
    asked = rs["asked"]
    for x in others:
        asked.setdefault(str(x), 0)

    def unprotected(n):
        if rows.included(pu, rf, n):
            return False
        if n < rf["blocks"]:                      # its contribution is not in parity (I12)
            rs["unprotected"] += 1
            if len(rs["first_unprotected"]) < MAX_LIST:
                rs["first_unprotected"].append(n)
        return True

    async def fold(n, srcs, bufs):
        d = f[HL:]
        await transfer.read_p(pu, n, d)                                           # S7005
        transfer.xor_copies(d, srcs, bufs)

    async def push(n, srcs):
        s, _ = await exchange.send_block(pu, kf, n, unit, 0, wire.PB_OP_RESTORE, f)    # S7006-S7007
        if s != wire.OK:
            raise Exception("restored block %d to unit %d: %s" % (n, unit, wire.status_name(s)))
        for x in srcs:          # counted with the pointer (saved together)
            asked[str(x[0])] += 1
        rs["sent"] += 1
        rs["ms"] = ticks_diff(ticks_ms(), t0)

    def srcs_of(n):             # a survivor without block n sends zeros (S8003-S8004, I4)
        return [(x, peers[x]) for x in others if rows.included(pu, rows.row(pu, x), n)]

    await transfer.blocks(pu, job, range(first, k), srcs_of, wire.PB_OP_RESTORE, fold, True, push,
                          max(1, len(others)), unprotected)                      # S7003-S7004
    rs["ms"] = ticks_diff(ticks_ms(), t0)
    st["restore"] = None
    st["last_restore"] = rs
    pu.save()
    await exchange.ctrl(pu, kf, {"m": "restored", "unprotected": rs["unprotected"]})
    job.note = "method %d: %d blocks sent to unit %d, %d unprotected" % (method, rs["sent"], unit,
                                                                        rs["unprotected"])
    pu.u.warn("parity unit: unit %d restored (%s)" % (unit, job.note))


async def j_rebuild(pu, job, first=0):
    """The PU rebuilds its parity: each DU sends its included blocks (I14); after a reset
    from the saved pointer `first`."""
    units = rows.members(pu)
    peers = dict(await exchange.peers_of(pu, units))
    await assign(pu, job, range(first, pu.nb), included_srcs(pu, units, peers))
    pu.st["rebuilding"] = False
    pu.save()
    job.note = "%d parity blocks rebuilt from %d units" % (pu.nb, len(units))
    pu.u.warn("parity unit: parity rebuilt (%d blocks)" % pu.nb)


async def recompute_blocks(pu, blocks):
    """A DU's blocks in doubt: P[n] again from every included copy."""
    units = rows.members(pu)
    peers = dict(await exchange.peers_of(pu, units))
    ok = [n for n in blocks if isinstance(n, int) and not isinstance(n, bool) and 0 <= n < pu.nb]
    await assign(pu, None, ok, included_srcs(pu, units, peers))
    pu.cnt["recomputed"] += len(ok)


# ---- board reset: the PU's procedures go on ----------------------------------------
def resume(pu):
    """Boot of the PU: the procedures that were running go on (docs/parity_unit.md,
    "Board resets").  A sequential build / add / delete resumes at its 740 position and
    recomputes each remaining block from every member's copy (the blocks done just before
    the reset may or may not be in parity); a restoration and the PU's rebuild, which
    only ever assign, go on from their saved pointer."""
    st = pu.st
    u = pu.u
    jobs = st.get("jobs") or {}

    def paused(name):
        return bool((jobs.get(name) or {}).get("paused"))

    t740 = st["t740"]
    rws = t740["rows"] if t740 else []
    busy = st["busy"]
    if busy == "build":
        brows = [r for r in rws if r["on"] and r["op"] == "build"]
        n0 = rows.resume_point(pu, "build", brows)
        run_job(pu, "pbuild", "parity-build", pu.nb, paused("pbuild"), lambda job: j_build(pu, job, n0), n0)
        u.warn("parity unit: build resumed after a reset at block %d (form %s)" % (n0, t740["form"]))
    elif busy in ("add", "delete"):
        mine = [r for r in rws if r["on"] and r["op"] == busy and r["method"] == "sequential"]
        if mine:
            r = mine[0]
            unit = r["unit"]
            n0 = rows.resume_point(pu, busy, [r])
            if busy == "add":
                run_job(pu, "padd%d" % unit, "parity-add", r["blocks"], paused("padd%d" % unit),
                        lambda job: j_add(pu, job, unit, n0), n0)
            else:
                run_job(pu, "pdel%d" % unit, "parity-delete", r["blocks"], paused("pdel%d" % unit),
                        lambda job: j_delete(pu, job, unit, n0), n0)
            u.warn("parity unit: %s of unit %d resumed after a reset at block %d (form %s)"
                   % (busy, unit, n0, t740["form"]))
        else:
            st["busy"] = None
    for r in rws:
        if r["on"] and r["method"] == "sequential" and r["op"] != busy:
            # the command was still being answered (its job had not started)
            u.warn("parity unit: the %s of unit %d was being set up when the board was reset; "
                   "run it again" % (r["op"], r["unit"]))
    if st["rebuilding"]:
        n0 = (jobs.get("prebuild") or {}).get("pointer", 0)
        run_job(pu, "prebuild", "parity-rebuild", pu.nb, paused("prebuild"), lambda job: j_rebuild(pu, job, n0), n0)
        u.warn("parity unit: rebuild resumed after a reset at block %d" % n0)
    rs = st["restore"]
    if rs:
        unit = rs["unit"]
        n0 = rs.get("pos", 0)
        name = "prestore%d" % unit
        run_job(pu, name, "parity-restore", rs["range"], paused(name),
                lambda job: j_restore(pu, job, unit, rs["method"], rs["range"], n0), n0)
        u.warn("parity unit: restoration of unit %d resumed after a reset at block %d" % (unit, n0))

