"""Reliability runs shared by the tests and `storlab reliability`: link faults, board
resets at random moments, fuzzing of the frame decoder and command parsers, and a
model-based run against a golden model.  Each returns the figures it measured."""
from __future__ import annotations

import json
import random
import struct
import threading
import time

from firmware import wire
from host.hostio import Workload, block_content
from host.link import LinkError, StatusError

# ---------------------------------------------------------------- link faults


def link_fault_run(rig, ops: int = 150, corrupt: float = 1e-3, seed: int = 5, progress=None,
                   iodepth: int = 1) -> dict:
    """A verifying workload through a link that corrupts, drops, duplicates and delays;
    progress(done, total), if given, after each op (each batch of 4 x iodepth ops at
    iodepth > 1, kept outstanding by run_queue) and each block read back."""
    u, h = rig.unit(), rig.host()
    vol = u.table("volumes")[0]
    u.set_link_faults(corrupt=corrupt, drop=0.01, duplicate=0.01, delay=0.01)
    wl = Workload(h, vol["id"], vol["blocks"], max_count=1, seed=seed)
    total = ops + vol["blocks"]
    if iodepth > 1:
        rng, batch = random.Random(seed), 4 * iodepth
        for i in range(0, ops, batch):
            q = [("w" if rng.random() < 0.5 else "r", vol["id"], rng.randrange(vol["blocks"]), 1)
                 for _ in range(min(batch, ops - i))]
            wl.bad += h.run_queue(q, iodepth)
            if progress:
                progress(i + len(q), total)
        ops_done = ops
    else:
        ops_done = 0
    for i in range(ops_done, ops):
        wl.step()
        if progress:
            progress(i + 1, total)
    bad = wl.bad
    u.flush()
    for lba in range(vol["blocks"]):
        bad += h.read(vol["id"], lba, 1)
        if progress:
            progress(ops + lba + 1, total)
    injected = u.link_faults.counters()
    u.set_link_faults()
    host_side = u.link.counters()
    board = u.table("link")
    return {"ops": ops, "iodepth": iodepth, "bad_blocks": bad, "injected": injected,
            "retransmits": host_side["retransmits"] + board["retransmits"],
            "duplicates_suppressed": board["dup_requests"] + host_side["dup_drive_requests"],
            "stale_dropped": board["stale_requests"] + host_side["stale_drive_requests"],
            "frames_dropped": host_side["bad_crc"] + host_side["bad_cobs"] + board["dropped"]}


# ---------------------------------------------------------------- resets


class _Writer:
    """Random single-block writes; knows which write was in flight when the board died."""

    def __init__(self, h, vol, blocks, seed):
        self.h = h
        self.vol = vol
        self.blocks = blocks
        self.rng = random.Random(seed)
        self.in_flight = None      # (lba, old gen, new gen)

    def write_one(self):
        lba = self.rng.randrange(self.blocks)
        v = self.h.verifier
        old = v.gens.get((self.vol, lba), 0)
        self.in_flight = (lba, old, old + 1)
        self.h.write(self.vol, lba, 1)
        self.in_flight = None


def _settle(h, vol, lba, old, new) -> bool:
    """After a reset: the block of an unacknowledged write holds the old or the new data."""
    data = h.unit.read(vol, lba, 1)
    for g in (new, old):
        want = bytes(h.unit.block_size) if g == 0 else block_content(vol, lba, g, h.unit.block_size, h.verifier.seed)
        if data == want:
            if g:
                h.verifier.gens[(vol, lba)] = g
            else:
                h.verifier.gens.pop((vol, lba), None)
            return True
    return False


def _rebuild_underway(u, figures, resume=True):
    """A member pulled and its rebuild a quarter done (then resumed, or with resume
    False left paused there, so the first kill lands mid-rebuild however fast the rest
    of it would have gone)."""
    u.flush()
    g = u.table("groups")[0]
    u.inject(g["members"][1], "fail")
    u.fail_drive(g["members"][1], "pulled")
    if not u.table("groups")[0]["rebuild"]:
        u.rebuild(g["id"], paused=True)
        quarter = g["rows"] // 4
        u.job(f"rebuild{g['id']}", "step", n=quarter)
        u.wait_for(lambda x: x.job(f"rebuild{g['id']}")["pointer"] >= quarter, what="a quarter rebuilt")
        u.mgmt("save")
        figures["rebuild_pointer_before_kills"] = quarter
        if resume:
            u.job(f"rebuild{g['id']}", "resume")


def _rebuild_after(u, figures):
    jobs = {j["name"]: j for j in u.table("jobs")}
    if "rebuild0" in jobs:
        u.wait_job("rebuild0")
    figures["group_after"] = u.table("groups")[0]["state"]


def _resumed(u, figures):
    jobs = {j["name"]: j for j in u.table("jobs")}
    if "rebuild0" in jobs and jobs["rebuild0"]["state"] != "done":
        figures["rebuild_resumed_from"].append(jobs["rebuild0"]["pointer"])


def reset_run(rig, kills: int = 4, seed: int = 1, during_rebuild: bool = True, iodepth: int = 1) -> dict:
    """Kill the board at random moments under a write workload (and, if asked, during a
    rebuild); after every restart, every acknowledged write must read back.  At
    iodepth > 1 see concurrent_reset_run."""
    if iodepth > 1:
        return concurrent_reset_run(rig, kills, seed, during_rebuild, iodepth)
    u, h = rig.unit(), rig.host()
    vol = u.table("volumes")[0]
    rng = random.Random(seed)
    w = _Writer(h, vol["id"], vol["blocks"], seed)
    for _ in range(20):
        w.write_one()
    figures = {"kills": 0, "unacknowledged_in_flight": 0, "unacknowledged_bad": 0, "bad_blocks": 0,
               "rebuild_resumed_from": []}
    if during_rebuild:
        _rebuild_underway(u, figures, resume=False)
    for _ in range(kills):
        timer = threading.Timer(rng.uniform(0.05, 0.4), u.kill)
        timer.start()
        try:
            while True:
                w.write_one()
        except (LinkError, StatusError, OSError, ValueError):
            pass
        timer.join()
        figures["kills"] += 1
        u.start(configure=False)
        if w.in_flight:
            figures["unacknowledged_in_flight"] += 1
            if not _settle(h, vol["id"], *w.in_flight):
                figures["unacknowledged_bad"] += 1
            w.in_flight = None
        _resumed(u, figures)
        if during_rebuild and figures["kills"] == 1:
            u.job("rebuild0", "resume")     # it goes on from its persisted pointer, under the next kills
        figures["bad_blocks"] += h.verify_all(vol["id"], vol["blocks"], chunk=8)
    if during_rebuild:
        _rebuild_after(u, figures)
    u.flush()
    figures["bad_blocks"] += h.verify_all(vol["id"], vol["blocks"], chunk=8)
    figures["writes_acknowledged"] = h.ops["writes"]
    return figures


def concurrent_reset_run(rig, kills: int = 4, seed: int = 1, during_rebuild: bool = True,
                         iodepth: int = 8) -> dict:
    """Writes on two host ports, iodepth outstanding on each, the board killed after a
    seeded number of answers (so writes are in flight, some to the same blocks); after
    every boot each block must hold what the golden model allows (host.golden): every
    acknowledged write, or a later one in flight; an unacknowledged one old or new."""
    from host.golden import Golden
    from host.model import run_batch

    u = rig.unit()
    vol = u.table("volumes")[0]
    n = vol["blocks"]
    rng = random.Random(seed)
    g = Golden(u.block_size, vol["id"])
    figures = {"kills": 0, "iodepth": iodepth, "unacknowledged_in_flight": 0, "bad_blocks": 0,
               "rebuild_resumed_from": [], "writes_acknowledged": 0}

    def writes(k):
        hot = rng.randrange(n - 8)        # half the writes near one spot: overlapping ones
        return [[rng.randrange(2), "w", hot + rng.randrange(8) if rng.random() < 0.5 else rng.randrange(n), 1]
                for _ in range(k)]

    def verify():
        return len(run_batch(u, g, [[0, "r", lba, min(8, n - lba)] for lba in range(0, n, 8)], iodepth, vol["id"]))

    figures["bad_blocks"] += len(run_batch(u, g, writes(20), iodepth, vol["id"]))
    if during_rebuild:
        _rebuild_underway(u, figures)
    for _ in range(kills):
        ops = writes(rng.randint(4 * iodepth, 12 * iodepth))
        kill_at = rng.randrange(iodepth, len(ops))
        figures["bad_blocks"] += len(run_batch(u, g, ops, iodepth, vol["id"], kill_after=kill_at))
        figures["kills"] += 1
        _resumed(u, figures)
        figures["bad_blocks"] += verify()
    if during_rebuild:
        _rebuild_after(u, figures)
    u.flush()
    figures["bad_blocks"] += verify()
    figures["writes_acknowledged"] = g.writes_acked
    figures["unacknowledged_in_flight"] = g.writes_unknown
    figures["blocks_checked"] = g.checked
    return figures


# ---------------------------------------------------------------- fuzzing

MUTATING_OPS = ("configure", "fail_drive", "rebuild", "job", "flush", "save", "peer_ping")
READ_ONLY_OPS = ("info", "table")


def _junk(rng: random.Random):
    return rng.choice([None, True, -1, 0, 1 << 40, -(1 << 33), 3.5, "", "x" * rng.randrange(40),
                       [], [rng.randrange(-5, 99)], {"a": 1}, {"blocks": -1}])


def fuzz_input(rng: random.Random, vols: list, drives: int, bs: int, seq=None, low=-1) -> tuple[str, bytes]:
    """One malformed input: ('raw', bytes on the wire) or ('frame', a framed request that
    must be refused).  Never a valid state-changing request.  The frame's channel and seq
    are in its first header bytes (see _frame_id)."""
    r = rng.random()
    if r < 0.15:   # line noise, with and without delimiters
        n = rng.randrange(1, 300)
        return "raw", bytes(rng.randrange(256) for _ in range(n)) + (b"\x00" if rng.random() < 0.7 else b"")
    if r < 0.25:   # a valid frame, then damaged: flipped byte, cut short, or wrong length field
        f = bytearray(wire.pack(wire.CH_HOST, wire.K_WRITE, rng.randrange(1, 60000),
                                struct.pack(wire.IO_HEAD, 0, 0, 1) + bytes(bs)))
        how = rng.randrange(3)
        if how == 0:
            i = rng.randrange(len(f) - 1)
            f[i] = rng.choice([b for b in (1, 2, 0x55, 0xAA, 0xFE, 0xFF) if b != f[i]])
        elif how == 1:
            f = f[:rng.randrange(1, len(f) - 1)] + b"\x00"
        else:
            f = bytearray(f[:-1] + bytes(rng.randrange(1, 255) for _ in range(rng.randrange(1, 9))) + b"\x00")
        return "raw", bytes(f)
    ch_kind = rng.random()
    if seq is None:
        seq = rng.randrange(1, 0xFFFF)
    if ch_kind < 0.45:   # host port requests with bad fields
        vol = rng.choice([v["id"] for v in vols] + [rng.randrange(100, 65535)])
        v = next((x for x in vols if x["id"] == vol), None)
        blocks = v["blocks"] if v else 10
        kind = rng.choice([wire.K_READ, wire.K_WRITE, wire.K_FLUSH, wire.K_VOLINFO, rng.randrange(5, 128)])
        how = rng.randrange(4)
        if how == 0:     # out of range
            lba, count = rng.choice([(blocks, 1), (blocks - 1, 2), (rng.randrange(blocks, 1 << 32), 1),
                                     (0, 0), (0, blocks + 1)])
            data = bytes(bs * count) if kind == wire.K_WRITE and count < 4 else b""
            payload = struct.pack(wire.IO_HEAD, vol, lba, count) + data
        elif how == 1:   # short payload
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 8)))
            if kind in (wire.K_FLUSH, wire.K_VOLINFO) and len(payload) >= 2:
                payload = payload[:1]
        elif how == 2:   # write with a wrong data length
            kind = wire.K_WRITE
            payload = struct.pack(wire.IO_HEAD, vol if v else 0, 0, 1) + bytes(rng.choice([0, 1, bs - 1, bs + 1]))
        else:            # unknown kind
            kind = rng.choice([0x00, 0x05, 0x09, 0x11, 0x12, 0x21, 0x31, 0x41, 0x7F])
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20)))
        return "frame", wire.pack(wire.CH_HOST + rng.randrange(0, 4), kind, seq, payload, low)
    if ch_kind < 0.85:   # management commands with bad fields
        how = rng.randrange(4)
        if how == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
        elif how == 1:
            body = json.dumps(_junk(rng)).encode()
        else:
            op = rng.choice(MUTATING_OPS + ("bogus", "", None, 7))
            cmd = {"op": op}
            if op == "configure":
                cmd["config"] = _junk(rng)        # refused: already configured, or invalid
            elif op == "fail_drive":
                cmd["drive"] = rng.choice([-1, drives, drives + 7, "1", None, 1.0])
            elif op == "rebuild":
                cmd["group"] = rng.choice([99, -1, "0", None])
            elif op == "job":
                cmd.update(name=rng.choice(["nope", "", None, 5]), action=_junk(rng))
            elif op in ("flush", "save"):
                cmd["op"] = rng.choice(["flush ", "SAVE", "save\x00"])
            elif op == "peer_ping":
                cmd["peer"] = rng.choice([-1, 16, "0", None])
            for _ in range(rng.randrange(3)):
                key = rng.choice(["x", "drive", "group", "force", "n", "spare", "name"])
                if key not in cmd and not (op == "configure" and key == "force"):
                    cmd[key] = _junk(rng)
            body = json.dumps(cmd).encode()
        return "frame", wire.pack(wire.CH_MGMT, wire.K_MGMT, seq, body, low)
    # frames on channels or with kinds that the board does not serve
    ch = rng.choice([wire.CH_DRIVE + rng.randrange(64), 0x73, 0x7A, 0xFF, wire.CH_LOG, wire.CH_PEER + 15])
    kind = rng.choice([wire.K_READ, wire.K_WRITE, wire.K_DREAD, wire.K_MGMT, rng.randrange(128)])
    if ch == wire.CH_LOG or kind in (wire.K_DREAD, wire.K_DWRITE):
        kind = 0x55
    if wire.CH_PEER <= ch < wire.CH_MGMT:
        kind = wire.K_PEER
        return "frame", wire.pack(ch, kind, seq, bytes([rng.choice([0, 0x7F, 0xEE])]), low)
    return "frame", wire.pack(ch, kind, seq, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12))), low)


def _frame_id(frame: bytes):
    """(channel, kind, seq) of a well-formed frame, whatever its channel and kind."""
    from firmware import core

    raw = bytearray(len(frame))
    n = core.cobs_decode(frame[:-1], raw)
    ch, kind, seq, _, _ = struct.unpack_from(wire.HDR, raw[:n])
    return ch, kind, seq


def _state(u) -> dict:
    """What fuzzing must not change: control tables (not statistics) and the drives."""
    t = {n: u.table(n) for n in ("config", "groups", "volumes")}
    t["drives"] = [{k: v for k, v in d.items() if k != "io"} for d in u.table("drives")]
    t["images"] = [d.image() for d in u.drives]
    return t


def fuzz_run(rig, inputs: int = 2000, seed: int = 0, progress=None) -> dict:
    """Throw malformed inputs at a unit: every framed request must be answered with an
    error status (or dropped and counted), the board must stay up and nothing change."""
    u = rig.unit()
    h = rig.host()
    vols = u.table("volumes")
    h.write(vols[0]["id"], 0, 4)
    u.flush()
    before = _state(u)
    rng = random.Random(seed)
    nd = len(u.drives)
    figures = {"inputs": 0, "raw": 0, "frames": 0, "answered_with_error": 0, "answered_ok": 0,
               "unanswered": 0}
    link0 = u.table("link")
    waiting = []
    for i in range(inputs):
        # framed inputs carry the link's own numbering: what is fuzzed is their content
        low = u.link.low_mark()     # (taken first: it covers the seq taken next)
        seq = u.link.next_seq()
        what, data = fuzz_input(rng, vols, nd, u.block_size, seq, low)
        figures["inputs"] += 1
        if what == "raw":
            figures["raw"] += 1
            # noise, then a delimiter: a sender that knows it sent junk resynchronises
            # the receiver before its next frame (without it, the next frame is lost too)
            u.link.send_raw(data + b"\x00")
            continue
        figures["frames"] += 1
        ch, kind, seq = _frame_id(data)
        w = u.link.expect(ch, seq)
        u.link.send_raw(data)
        waiting.append((ch, kind, w))
        if len(waiting) >= 4:
            _collect(u, waiting, figures)
        if progress and i % 500 == 0:
            progress(i)
    _collect(u, waiting, figures)
    link1 = u.table("link")
    figures["board_dropped"] = link1["dropped"] - link0["dropped"]
    figures["board_alive"] = bool(u.mgmt("info"))
    figures["state_unchanged"] = _state(u) == before
    figures["bad_blocks"] = h.verify_all(vols[0]["id"], 4)
    return figures


def _collect(u, waiting, figures):
    for ch, _kind, w in waiting:
        if not w.ev.wait(10):
            figures["unanswered"] += 1
            u.link.unexpect(ch, w)
            continue
        st = w.payload[0] if w.payload else wire.E_INTERNAL
        if st in (wire.OK, wire.RECOVERED):
            figures["answered_ok"] += 1     # a read-only request may legitimately succeed
        else:
            figures["answered_with_error"] += 1
    waiting.clear()


# ---------------------------------------------------------------- model


def model_run(board: str = "inprocess", steps: int = 300, seed: int = 0, iodepth: int = 1) -> dict:
    """Random steps (I/O, a member failure and rebuild, defects, resets, malformed
    requests) against the golden model; with iodepth > 1 most I/O comes in concurrent
    batches on two host ports (a member held, failed or the board killed mid-batch).
    A failure is saved as a replayable trace."""
    from host.model import ModelRun, random_steps

    run = ModelRun(board)
    done = 0
    figures = {"steps": 0, "iodepth": iodepth, "blocks_checked": 0, "mismatches": 0, "saved": None}
    try:
        for st in random_steps(random.Random(seed), steps, run.blocks, iodepth=iodepth):
            try:
                run.apply(st)
            except Exception as e:   # a wrong read, or an error where none is due
                figures["mismatches"] += 1
                figures["saved"] = str(run.save_failure(repr(e)))
                break
            done += 1
    finally:
        figures["steps"] = done
        figures["blocks_checked"] = run.checked
        figures["reads_with_overlap"] = run.golden.ambiguous
        run.close()
    return figures


# ---------------------------------------------------------------- all of it


def run_all(board: str = "emulator", fuzz: int = 5000, kills: int = 5, ops: int = 150,
            model_steps: int = 300, progress=None, tick=None, iodepth: int = 1) -> dict:
    """Every run; progress(message) as each begins, tick(run, done, total or None)
    within the link-fault and fuzz runs.  iodepth: requests kept outstanding by the
    link-fault workload, the reset run's writers and the model's batches."""
    from host.model import model_rig_desc
    from host.rig import Rig

    say = progress or (lambda *a: None)
    out = {}
    desc = model_rig_desc(512)
    say(f"link faults: {ops} verified ops at 1e-3 corrupted bytes, 1% dropped/duplicated/delayed frames ...")
    with Rig(desc, board=board) as rig:
        out["link_faults"] = timed(link_fault_run, rig, ops=ops, iodepth=iodepth,
                                   progress=(lambda d, t: tick("link_faults", d, t)) if tick else None)
    say(f"board resets: {kills} kills mid-write and mid-rebuild ...")
    rdesc = model_rig_desc(4096)
    rdesc["unit"][0]["drive_blocks"] = 512
    rdesc["unit"][0]["volume"] = [{"id": 0, "group": 0, "blocks": 600}]
    with Rig(rdesc, board=board) as rig:
        out["resets"] = timed(reset_run, rig, kills=kills, iodepth=iodepth)
    say(f"fuzzing: {fuzz} malformed inputs ...")
    with Rig(model_rig_desc(4096), board=board) as rig:
        out["fuzz"] = timed(fuzz_run, rig, inputs=fuzz, progress=(lambda i: tick("fuzz", i, None)) if tick else None)
    say(f"model: {model_steps} random steps against the golden model ...")
    out["model"] = timed(model_run, board, model_steps, iodepth=iodepth)
    return out


def mismatches(figures: dict) -> int:
    """Everything that counts as a failure, summed (goal: 0)."""
    lf, rs, fz, md = (figures.get(k, {}) for k in ("link_faults", "resets", "fuzz", "model"))
    return (lf.get("bad_blocks", 0) + rs.get("bad_blocks", 0) + rs.get("unacknowledged_bad", 0)
            + fz.get("unanswered", 0) + (0 if fz.get("state_unchanged", True) else 1) + fz.get("bad_blocks", 0)
            + md.get("mismatches", 0))


# ---------------------------------------------------------------- report


def report(figures: dict) -> str:
    lines = [f"mismatches found: {mismatches(figures)} (goal 0)"]
    for name, f in figures.items():
        lines.append(f"{name}:")
        for k, v in f.items():
            lines.append(f"  {k:28} {v}")
    return "\n".join(lines)


def timed(fn, *a, **kw):
    t = time.monotonic()
    out = fn(*a, **kw)
    out["seconds"] = round(time.monotonic() - t, 2)
    return out
