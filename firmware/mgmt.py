# Management (service processor) commands: JSON in, status + JSON out.
# Every command validates all its fields before it changes anything.
import json

from firmware import features, ldev, store, volmap, wire
from firmware.args import Refused, is_int
from firmware.args import need_int as _int
from firmware.raid import capacity


def build_tables(cfg, board):
    """Validate a configuration; return the SM tables it defines (raises ValueError)."""
    if not isinstance(cfg, dict):
        raise ValueError("config must be an object")
    bs = _int(cfg, "block_size", 512, 65536)
    if bs & (bs - 1):
        raise ValueError("block_size must be a power of two, got %d" % bs)
    if bs + wire.IO_HEAD_LEN > board["max_payload"]:
        raise ValueError("block_size %d does not fit the board's %d-byte frames" % (bs, board["max_payload"]))
    mode = cfg.get("cache_mode", "write-back")
    if mode not in ("write-back", "write-through"):
        raise ValueError("cache_mode must be write-back or write-through")
    dl = cfg.get("drives")
    if not isinstance(dl, list) or not dl or len(dl) > 64:
        raise ValueError("drives must be a list of 1..64 drives")
    drives = []
    for i in range(len(dl)):
        drives.append({"id": i, "blocks": _int(dl[i], "blocks", 1), "state": "normal",
                       "io": {"r": 0, "w": 0}})
    used = {}
    groups = []
    if not isinstance(cfg.get("groups", []), list) or not isinstance(cfg.get("volumes", []), list):
        raise ValueError("groups and volumes must be lists")
    for gc in cfg.get("groups", []):
        gid = _int(gc, "id", 0, volmap.MAX_GROUPS - 1)
        if any(g["id"] == gid for g in groups):
            raise ValueError("group %d defined twice" % gid)
        level = gc.get("level")
        if level not in (1, 5):
            raise ValueError("group %d: level must be 1 or 5, got %r" % (gid, level))
        mem = gc.get("members")
        if not isinstance(mem, list):
            raise ValueError("group %d: members must be a list" % gid)
        least = 3 if level == 5 else 2
        if len(mem) < least or len(mem) > board["max_members"]:
            raise ValueError("group %d: RAID%d needs %d..%d members, got %d"
                             % (gid, level, least, board["max_members"], len(mem)))
        for d in mem:
            if not is_int(d) or d < 0 or d >= len(drives):
                raise ValueError("group %d: no drive %r" % (gid, d))
            if d in used:
                raise ValueError("group %d: drive %d already in group %d" % (gid, d, used[d]))
            used[d] = gid
        chunk = _int(gc, "chunk", 1, 1 << 16) if "chunk" in gc else 1
        rows = min(drives[d]["blocks"] for d in mem)
        if "rows" in gc:
            rows = _int(gc, "rows", 1, rows)
        spares = gc.get("spares", [])
        if not isinstance(spares, list):
            raise ValueError("group %d: spares must be a list" % gid)
        for s in spares:
            if not is_int(s) or s < 0 or s >= len(drives) or s in mem:
                raise ValueError("group %d: bad spare %r" % (gid, s))
        groups.append({"id": gid, "level": level, "members": list(mem), "chunk": chunk,
                       "rows": rows, "capacity": capacity(level, len(mem), rows, chunk),
                       "failed": [], "state": "normal", "spares": list(spares),
                       "rebuild": None, "auto_rebuild": bool(gc.get("auto_rebuild", True))})
    for g in groups:
        for s in g["spares"]:
            if s in used:
                raise ValueError("group %d: spare drive %d is a member of group %d" % (g["id"], s, used[s]))
            drives[s]["state"] = "spare"
    vols = []
    for vc in cfg.get("volumes", []):
        vols.append(volmap.build(vc, groups, vols))
    tables = {"config": cfg, "drives": drives, "groups": groups, "volumes": vols, "warnings": [],
              "ldevs": ldev.build(cfg, groups, vols)}
    features.validate(cfg, tables)
    return tables


def table(u, name):
    fn = u.table_fns.get(name)
    if fn is not None:
        return fn(u)
    if name == "jobs":
        return u.jobs.table()
    if name == "cache":
        return u.cache.info() if u.cache else None
    if name == "link":
        return u.link.counters()
    if name == "raid":
        r = u.raid
        return r.counters() if r else None
    if name == "mem":
        return mem(u)
    if name == "iopath":
        return u.path.order()
    if name == "lvs":
        return ldev.table_300(u)
    if name in u.sm.t:
        return u.sm.t[name]
    raise KeyError(name)


def mem(u):
    """Heap figures: live = bytes still allocated right after a full collection."""
    import gc

    gc.collect()
    d = {}
    try:
        live = gc.mem_alloc()
        d["live"] = live
        d["free"] = gc.mem_free()
        d["heap"] = live + d["free"]
        if live > u.mem_peak:
            u.mem_peak = live
    except AttributeError:
        pass
    d["live_peak"] = u.mem_peak
    d.update(u.mem_steps)   # live after the imports, after Unit(), after configure
    d["buffers"] = buffers(u)
    return d


def buffers(u):
    """Bytes of the unit's preallocated buffers, by owner (docs/boards.md)."""
    ln = u.link
    d = {"link.encoder": len(ln.enc.enc), "link.decoder": len(ln.dec.acc), "link.rxbuf": len(ln.rxbuf),
         "link.workers": sum([len(w.buf) for w in ln.workers]), "request_slots": len(ln.free) + len(ln.pending)}
    if u.cache is not None:
        d["cache"] = sum([len(s) for s in u.cache.slot])
    if u.raid is not None:
        d["raid_scratch"] = u.bs * (len(u.raid.scratch) + sum([len(s) for s in u.raid.lock.sets]))
    for f in u.features.values():   # a feature's own buffers, where it reports them
        fb = getattr(f, "buffers", None)
        if fb is not None:
            d.update(fb())
    return d


TABLES = ("config", "drives", "groups", "volumes", "warnings", "boot", "jobs", "cache", "link",
          "raid", "mem", "iopath", "ldevs", "lvs")


async def run(u, cmd):
    """Execute one command; return (status, reply dict)."""
    op = cmd.get("op")
    if op == "info":
        d = json.loads(u.hello())
        computed = ("jobs", "link", "mem", "iopath", "lvs")
        d["tables"] = [t for t in TABLES if t in u.sm.t or t in computed] + list(u.table_fns)
        d["features"] = list(u.features)
        if u.feature_errors:
            d["feature_errors"] = u.feature_errors
        return wire.OK, d
    if op == "table":
        try:
            return wire.OK, {"table": table(u, cmd.get("name"))}
        except KeyError:
            return wire.E_BAD_PARAM, {"error": "no table %r" % (cmd.get("name"),)}
    if op == "configure":
        if u.configured() and not cmd.get("force"):
            return wire.E_STATE, {"error": "unit already configured (use force to replace)"}
        try:
            tables = build_tables(cmd.get("config"), u.board)
        except ValueError as e:
            return wire.E_BAD_PARAM, {"error": str(e)}
        boot = u.sm.t.get("boot", {"count": 1})
        old = u.sm.t
        u.sm.t = tables
        u.sm.t["boot"] = boot
        u.sm.save()
        u.setup()
        if u.feature_errors:       # cannot run here: the previous configuration stays
            why = "; ".join("%s (%s)" % kv for kv in u.feature_errors.items())
            u.sm.t = old
            u.sm.save()
            if old.get("config"):
                u.setup()
            else:
                u.feature_errors = {}
            return wire.E_BAD_PARAM, {"error": "configuration not applied: feature %s cannot attach" % why}
        return wire.OK, {"groups": [{"id": g["id"], "capacity": g["capacity"]} for g in tables["groups"]]}
    if not u.configured():
        return wire.E_STATE, {"error": "unit not configured"}
    if op == "fail_drive":
        d = cmd.get("drive")
        if not is_int(d) or d < 0 or d >= len(u.sm.t["drives"]):
            return wire.E_BAD_PARAM, {"error": "no drive %r" % (d,)}
        u.fail_drive(d, cmd.get("why", "operator"))
        return wire.OK, {}
    if op == "rebuild":
        gid = cmd.get("group")
        spare = cmd.get("spare", -1)
        g = u.group(gid) if is_int(gid) else None
        if g is None or not is_int(spare):
            return wire.E_BAD_PARAM, {"error": "no group %r" % (cmd.get("group"),)}
        err = u.start_rebuild(g, cmd.get("spare", -1), cmd.get("paused", False))
        return (wire.E_STATE, {"error": err}) if err else (wire.OK, {})
    if op == "job":
        job = u.jobs.get(cmd.get("name"))
        if job is None:
            return wire.E_BAD_PARAM, {"error": "no job %r" % (cmd.get("name"),)}
        act = cmd.get("action")
        if act == "pause":
            job.pause()
        elif act == "resume":
            job.resume()
        elif act == "step":
            n = cmd.get("n", 1)
            if not is_int(n) or n < 1:
                return wire.E_BAD_PARAM, {"error": "step needs n >= 1"}
            job.step(n)
        elif act != "info":
            return wire.E_BAD_PARAM, {"error": "job action must be pause, resume, step or info"}
        if job.persist is not None and act in ("pause", "resume"):
            job.persist["paused"] = job.state == "paused"   # a reset keeps it so
            u.sm.save()
        return wire.OK, {"job": job.info()}
    if op == "flush":
        stuck = await store.flush(u)
        return (wire.OK if stuck == 0 else wire.E_DATA_LOST), {"dirty": u.cache.ndirty, "stuck": stuck}
    if op == "trace":
        on = cmd.get("on", True)
        if not isinstance(on, bool):
            return wire.E_BAD_PARAM, {"error": "on must be true or false"}
        u.tracing = on
        return wire.OK, {"tracing": on}
    if op == "save":
        u.sm.save()
        return wire.OK, {"saves": u.sm.saves}
    if op == "peer_ping":
        k = cmd.get("peer")
        if not is_int(k) or k < 0 or k > 15:
            return wire.E_BAD_PARAM, {"error": "peer must be 0..15"}
        data = str(cmd.get("data", "")).encode()
        buf = bytearray(256)
        from firmware.peer import PEER_PING  # the peer layer: loaded when first used

        p = u.link.start(wire.CH_PEER + k, wire.K_PEER, bytes([PEER_PING]), data, buf)
        if p is None:
            return wire.E_BUSY, {"error": "no free request slot"}
        st = await u.link.finish(p, cmd.get("timeout_ms", 3000))
        return st, {"reply": bytes(buf[:p.n]).decode() if st == wire.OK else "",
                    "status": wire.status_name(st)}
    if op in ldev.OPS:
        try:
            return ldev.op(u, cmd)
        except Refused as e:
            return e.status, {"error": str(e)}
    fn = u.ops.get(op)
    if fn is not None:
        return await fn(u, cmd)
    return wire.E_UNKNOWN_KIND, {"error": "unknown op %r" % (op,)}


async def handle(u, req):
    try:
        cmd = json.loads(bytes(req.payload()))
        if not isinstance(cmd, dict):
            raise ValueError("command must be a JSON object")
    except ValueError as e:
        st, reply = wire.E_BAD_PARAM, {"error": "malformed command: %s" % e}
    else:
        st, reply = await run(u, cmd)
    out = json.dumps(reply).encode()
    if len(out) + 1 > u.link.max_payload:
        st = wire.E_TOO_LONG
        out = json.dumps({"error": "reply of %d bytes exceeds the %d-byte frame"
                          % (len(out), u.link.max_payload)}).encode()
    u.link.respond(req.ch, req.kind, req.seq, st, out)
