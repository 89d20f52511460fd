# Rearrangement of LDEVs that hold data (seed 003 E3, and the moves of E4 levelling).
#
# A move of one LV is a list of items, in address order: the LV addresses first..last
# that source LDEV `src` holds go to destination LDEV `dst` (at the same offset inside
# it).  The copy pointer (306) runs through the items' ranges, copy_blocks addresses per
# step (a step never crosses an item's end).  Each step reads the blocks from the source
# place (the cache first), stores them at the destination (durable: fetch.durable), then remaps
# those LV addresses onto the destination in the LV's extents, so the volume map itself
# routes host I/O by the pointer: addresses below it are read and written at the new
# place, the others at the old one (Fig 9's rule, for reads and writes alike).  The step
# and the remap run under the feature's lock, which host I/O to the LV takes too.
#
# When an item is done its source LDEV is free again (it holds nothing of the LV) and its
# statistics go with the data; when all are done the move is SIMPLEX.  The pointer and
# the remapped extents are one SM save (the volume map is in SM too): the saver takes
# them within save_ms, a host write behind the pointer that the last save did not cover
# saves them first (feature.on_write), an LDEV done saves at once; always after the data
# is durable.  So a reset resumes from a saved pointer with the volume map matching it,
# and the addresses it copies again hold no host write yet.
from firmware import ldev, store, wire
from firmware.features.migration import lvmap
from firmware.features.migration.fetch import durable
from firmware.link import sleep_ms
from firmware.raid import GOOD

UNDER = "UNDER COPYING"
SIMPLEX = "SIMPLEX"


def new_record(lv, items, why, paused):
    return {"lv": lv, "name": "mv%d" % lv, "why": why, "state": UNDER, "items": items, "k": 0,
            "pointer": items[0]["first"], "copied": 0, "paused": bool(paused)}


def item(u, src, dst, first, last, offset):
    """One source LDEV's part of an LV (addresses first..last, `offset` blocks into it)
    going to LDEV dst."""
    s = ldev.get(u, src)
    d = ldev.get(u, dst)
    return {"src": src, "dst": dst, "first": first, "last": last,
            "sgid": s["group"], "sglba": s["start"] + offset, "dgid": d["group"], "dglba": d["start"] + offset}


def steps_of(m, cb):
    """(steps done, steps in all) of a move."""
    done = total = 0
    for i in range(len(m["items"])):
        it = m["items"][i]
        n = (it["last"] - it["first"] + cb) // cb
        total += n
        if i < m["k"]:
            done += n
        elif i == m["k"]:
            done += (m["pointer"] - it["first"]) // cb
    return done, total


async def run(mig, job, m):
    u = mig.u
    cb = mig.cfg["copy_blocks"]
    buf = mig.fetcher.buf
    while m["state"] == UNDER and mig.live:
        await job.gate()
        async with mig.lock:
            if mig.moves.get(m["lv"]) is not m or not mig.live:
                return
            k = m["k"]
            it = m["items"][k]
            p = m["pointer"]
            n = min(cb, it["last"] + 1 - p)
            off = p - it["first"]
            b = buf[:n * u.bs]
            st = await store.read_blocks(u, u.group(it["sgid"]), it["sglba"] + off, n, b)
            if st not in GOOD:
                job.state = "failed"
                job.note = "read of LV %d address %d failed: %s" % (m["lv"], p, wire.status_name(st))
                u.warn("migration: %s: %s" % (job.name, job.note))
                return
            await store.write_blocks(u, u.group(it["dgid"]), it["dglba"] + off, n, b)
            await durable(u)
            lvmap.remap(mig.volume(m["lv"]), p, n, it["dgid"], it["dglba"] + off)
            if u.tracing:
                u.trace("mig_move", m["lv"], p, n, it["src"], it["dst"])
            m["pointer"] = p + n
            m["copied"] += 1
            if m["pointer"] > it["last"]:
                item_done(mig, m, it)
            job.pointer = steps_of(m, cb)[0]
            job.note = "copied %d steps" % m["copied"]
            if m["state"] == SIMPLEX:
                mig.finished(m, job)
            if m["k"] != k:
                u.sm.save()             # an LDEV done: the LDEV table changed
            else:
                u.sm.dirty = True       # saved within save_ms (or by a write behind it)
        await sleep_ms(0)


def item_done(mig, m, it):
    """301 <- the destination, 302 COPY ABSENT: the source LDEV is free again (unless
    another LV holds a part of it: an LV not cut at LDEV boundaries)."""
    u = mig.u
    use = ldev.get(u, it["src"])["use"]
    if not holders(u, it["src"]):
        ldev.free(u, [it["src"]])
    ldev.get(u, it["dst"])["use"] = use
    mig.stats.moved(it["src"], it["dst"])
    it["done"] = True
    m["k"] += 1
    if m["k"] < len(m["items"]):
        m["pointer"] = m["items"][m["k"]]["first"]
    else:
        m["state"] = SIMPLEX


def holders(u, n):
    """[(LV, entry)] of every table 300 entry on LDEV n."""
    out = []
    for v in u.sm.t["volumes"]:
        for e in ldev.entries(u, v):
            if e["ldev"] == n:
                out.append((v["id"], e))
    return out


def view(m):
    """Table 300 / 310 as the seed keeps them during the move (mig_moves)."""
    out = []
    for i in range(len(m["items"])):
        it = m["items"][i]
        done = i < m["k"]
        out.append({"301": it["dst"] if done else it["src"], "302": "COPY ABSENT" if done else "COPY PRESENT",
                    "308": [it["first"], it["last"]], "315": None if done else it["dst"],
                    "src": it["src"], "dst": it["dst"], "src_group": it["sgid"], "dst_group": it["dgid"]})
    return {"lv": m["lv"], "job": m["name"], "why": m["why"], "306": m["pointer"], "307": m["state"],
            "entries": out, "copied": m["copied"]}
