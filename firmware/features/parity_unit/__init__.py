# Parity storage unit (seed 000, JP 2004-019739): several data storage units (DUs), each
# on its own board, backed up by one parity storage unit (PU) that stores the XOR of
# their parity blocks; any one unit, the PU included, can be rebuilt from the others.
#
# Every unit cuts its storage area (its logical volumes, laid out in declaration order,
# reading I2) into parity blocks of one length L (a multiple of the block size).  Block n
# of every DU belongs to block n of the PU: P[n] = XOR of D_i[n], a unit without block n
# counting as zeros (I4).  The PU keeps its parity in its own volumes, through its cache.
#
# Tables (SM "parity", readable as parity_710 .. parity_740, see docs/parity_unit.md):
#   710 parity group (Fig 10), 720 block length / count / first block of each LV (Fig 11),
#   730 block counts of every unit (Fig 12, PU), 740 initial data management (Figs 13A-C,
#   PU; one row per DU: ON/OFF, 13B position, 13C completed blocks).  At run time each ON
#   row has a bitmap of the blocks whose contribution is in parity ("included").
#
# Wire: block data travels in PBLOCK frames (Fig 33, firmware/wire.py); control messages
# (settings, block counts, start/stop, restore requests) are JSON in PEER subtype CTRL.
# The PU drives every long procedure as a job that pulls blocks from the DUs one number at
# a time (a PBLOCK request; the DU answers with the Fig 33 frame): build (S1009-S1014),
# sequential add (S4010-S4015), delete (S9001-S9006), restoration (S7002-S7007 /
# S8002-S8007) and the PU's own rebuild.  DUs push only write deltas (S6003), read-sends
# (Fig 23 option) and nothing else; the PU pushes restored blocks to the failed DU.
#
# Concurrency.  A DU's host write runs here, under the DU's lock: read Dold through the
# normal read path (S6001), send X = Dold ^ Dnew (S6002-S6003) and wait for the PU, then
# put Dnew in the cache.  A DU serves a pull under the same lock, so a copy never falls
# between a delta and its write.  The PU applies every contribution as P[n] ^= x under its
# own lock (never held across peer I/O), so the order of copies and deltas does not
# matter.  Jobs that read P[n] together with pulled copies (restore, PU rebuild) retry a
# block when P[n] changed meanwhile (per-block change counter `ver`).
import asyncio
import binascii
import json
import struct

from firmware import cha, core, wire
from firmware.jobs import DONE, FAILED, PAUSED, Job
from firmware.link import sleep_ms
from firmware.peer import KIND_KEY
from firmware.raid import GOOD

try:
    from time import ticks_diff, ticks_ms
except ImportError:
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

CTRL = 0x50                     # PEER subtype: control messages (JSON)
HL = wire.PBLK_HEAD_LEN
MSG_SYNC = "synchronous initial copy cannot be made"     # S1015, S2016, S3009
MSG_ADD = "data storage unit cannot be added"            # S4016, S5010
FORMS = ("13A", "13B", "13C")
METHODS = ("sequential", "random")
OPS = {"build": wire.PB_OP_BUILD, "add": wire.PB_OP_ADD, "delete": wire.PB_OP_DELETE}
TIMEOUT_MS = 5000
MAX_LIST = 64                   # block numbers listed in a reply
SEQ_GAP = 0x2000                # link seqs skipped over a reset (more than sent between SM saves)


class Refused(Exception):
    """A request refused: args = (status, text)."""


def _int(cmd, key, lo=0, hi=1 << 31):
    v = cmd.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise Refused(wire.E_BAD_PARAM, "%s must be an integer in [%d, %d], got %r" % (key, lo, hi, v))
    return v


def _choice(cmd, key, allowed, default):
    v = cmd.get(key, default)
    if v not in allowed:
        raise Refused(wire.E_BAD_PARAM, "%s must be one of %s, got %r" % (key, ", ".join(allowed), v))
    return v


def _ranges(bm, nbits, want_set):
    """[[first, last], ...] of the set (or clear) bits of bm[:nbits]."""
    out = []
    i = 0
    while i < nbits:
        a = core.next_set(bm, i, nbits) if want_set else core.next_clear(bm, i, nbits)
        if a < 0:
            break
        b = core.next_clear(bm, a, nbits) if want_set else core.next_set(bm, a, nbits)
        if b < 0:
            b = nbits
        out.append([a, b - 1])
        i = b
    return out


class ParityUnit:
    def __init__(self, u):
        self.u = u
        self.lock = asyncio.Lock()
        self.peers = {}          # unit number -> peer index (PU: found with "who")
        self.jobs_running = {}   # job name -> Job (PU)
        self.cnt = {"tx_blocks": 0, "rx_blocks": 0, "tx_bytes": 0, "rx_bytes": 0,
                    "deltas_sent": 0, "deltas_applied": 0, "copies_applied": 0,
                    "readsend_ignored": 0, "restored_written": 0, "restored_ignored": 0,
                    "retries": 0, "busy_retries": 0, "recomputed": 0}
        self.st = None
        self.pu_resets = 0       # DU: PEER_RESET notices from the PU's path (it rebooted)
        self.resolving = False   # DU: a task is asking the PU to recompute blocks in doubt
        self.boot()
        # Peers remember recent request seqs (duplicate / stale suppression): after a
        # reset this board must not start again at seq 1, or its first requests to the
        # other units look like copies of old ones.  The seq is saved with SM (sync)
        # and resumed well ahead of it.
        seq = self.st.get("link_seq")
        if isinstance(seq, int):
            u.link.seq = (seq + SEQ_GAP) & 0xFFFF

    # ---- state ---------------------------------------------------------------------
    def boot(self):
        u = self.u
        cfg = u.sm.t["config"].get("parity_unit") or {}
        role = cfg.get("role")
        if role not in ("data", "parity"):
            raise ValueError("parity_unit.role must be data or parity, got %r" % (role,))
        me = cfg.get("unit")
        if not isinstance(me, int) or me < 1 or me > 255:
            raise ValueError("parity_unit.unit must be a unit number 1..255, got %r" % (me,))
        self.role = role
        self.me = me
        self.gid = cfg.get("group", 1)
        self.form = cfg.get("form", "13B")
        st = u.sm.t.get("parity")
        if st is None:
            st = {"t710": None, "t720": None, "t730": None, "t740": None,
                  "busy": None, "rebuilding": False, "restore": None,       # PU
                  "pu": None, "pu_peer": None, "member": False, "op": None,  # DU
                  "sent": 0, "read_send": False, "restoring": None, "prev": None}
            u.sm.t["parity"] = st
            u.sm.save()
        self.st = st
        # area: (first area block, volume) in declaration order (I2)
        self.segs = []
        self.vstart = {}
        a = 0
        for v in u.sm.t.get("volumes", []):
            self.segs.append((a, v))
            self.vstart[v["id"]] = a
            a += v["blocks"]
        self.area_blocks = a
        self.bm = {}
        t740 = st["t740"]
        if t740:
            for r in t740["rows"]:
                if r.get("inc") is not None:
                    self.bm[r["unit"]] = bytearray(binascii.unhexlify(r["inc"]))
        self._geometry()
        if self.role == "parity" and not self.jobs_running:
            self.resume()
        if self.role == "data" and st.get("doubt") and not self.resolving:
            self.resolving = True
            asyncio.create_task(self.resolve())

    def check(self):
        """After a forced reconfiguration the SM table is gone: start again."""
        if self.u.sm.t.get("parity") is not self.st:
            self.jobs_running = {}
            self.boot()

    def sync(self):
        """Before every SM save: the 740 bitmaps as hex, the jobs' pointers and pause."""
        if self.u.sm.t.get("parity") is not self.st:
            return
        self.st["link_seq"] = self.u.link.seq
        jobs = {}
        for name in self.jobs_running:
            job = self.jobs_running[name]
            jobs[name] = {"pointer": job.pointer, "paused": job.state == PAUSED}
        self.st["jobs"] = jobs
        rs = self.st["restore"]
        if rs:
            job = self.jobs_running.get("prestore%d" % rs["unit"])
            if job is not None:
                rs["pos"] = job.pointer
        t740 = self.st["t740"]
        if not t740:
            return
        for r in t740["rows"]:
            bm = self.bm.get(r["unit"])
            r["inc"] = binascii.hexlify(bm).decode() if (bm is not None and r["on"]) else None

    # ---- board reset: the PU's procedures go on ----------------------------------------
    def resume_point(self, op, rows):
        """Where a sequential build / add / delete goes on after a reset, from table 740
        in the form the PU keeps: 13B the position, 13C the first block not completed,
        13A (ON / OFF only) block 0."""
        form = self.st["t740"]["form"]
        if form == "13A":
            return 0
        if form == "13B":
            return max([r["pos"] for r in rows] + [0])
        out = -1
        for r in rows:
            bm = self.bm[r["unit"]]
            if op == "delete":       # 13C keeps the blocks already removed (I11)
                n = 0 if r.get("partial") else core.next_set(bm, 0, r["blocks"])
            else:
                n = core.next_clear(bm, 0, r["blocks"])
            if n < 0:
                n = r["blocks"] if op != "build" else -1
            if n >= 0 and (out < 0 or n < out):
                out = n
        if out < 0:     # build: every row complete
            out = max([r["blocks"] for r in rows] + [0])
        return out

    def resume(self):
        """Boot of the PU: the procedures that were running go on (docs/parity_unit.md,
        "Board resets").  A sequential build / add / delete resumes at its 740 position
        and recomputes each remaining block from every member's copy (the blocks done
        just before the reset may or may not be in parity); a restoration and the PU's
        rebuild, which only ever assign, go on from their saved pointer."""
        st = self.st
        u = self.u
        jobs = st.get("jobs") or {}

        def paused(name):
            return bool((jobs.get(name) or {}).get("paused"))

        t740 = st["t740"]
        rows = t740["rows"] if t740 else []
        busy = st["busy"]
        if busy == "build":
            brows = [r for r in rows if r["on"] and r["op"] == "build"]
            n0 = self.resume_point("build", brows)
            self.run_job("pbuild", "parity-build", self.nb, paused("pbuild"),
                         lambda job: self.j_build(job, n0), n0)
            u.warn("parity unit: build resumed after a reset at block %d (form %s)" % (n0, t740["form"]))
        elif busy in ("add", "delete"):
            mine = [r for r in rows if r["on"] and r["op"] == busy and r["method"] == "sequential"]
            if mine:
                r = mine[0]
                unit = r["unit"]
                n0 = self.resume_point(busy, [r])
                if busy == "add":
                    self.run_job("padd%d" % unit, "parity-add", r["blocks"], paused("padd%d" % unit),
                                 lambda job: self.j_add(job, unit, n0), n0)
                else:
                    self.run_job("pdel%d" % unit, "parity-delete", r["blocks"], paused("pdel%d" % unit),
                                 lambda job: self.j_delete(job, unit, n0), n0)
                u.warn("parity unit: %s of unit %d resumed after a reset at block %d (form %s)"
                       % (busy, unit, n0, t740["form"]))
            else:
                st["busy"] = None
        for r in rows:
            if r["on"] and r["method"] == "sequential" and r["op"] != busy:
                # the command was still being answered (its job had not started)
                u.warn("parity unit: the %s of unit %d was being set up when the board was reset; "
                       "run it again" % (r["op"], r["unit"]))
        if st["rebuilding"]:
            n0 = (jobs.get("prebuild") or {}).get("pointer", 0)
            self.run_job("prebuild", "parity-rebuild", self.nb, paused("prebuild"),
                         lambda job: self.j_rebuild(job, n0), n0)
            u.warn("parity unit: rebuild resumed after a reset at block %d" % n0)
        rs = st["restore"]
        if rs:
            unit = rs["unit"]
            n0 = rs.get("pos", 0)
            name = "prestore%d" % unit
            self.run_job(name, "parity-restore", rs["range"], paused(name),
                         lambda job: self.j_restore(job, unit, rs["method"], rs["range"], n0), n0)
            u.warn("parity unit: restoration of unit %d resumed after a reset at block %d" % (unit, n0))

    def _geometry(self):
        """Block length, counts and the buffers that go with them (from table 720)."""
        t720 = self.st["t720"]
        bs = self.u.bs
        if t720 is None:
            self.L = 0
            self.m = 0
            self.nb = 0
            return
        L = t720["block_length"]
        self.L = L
        self.m = L // bs
        self.nb = t720["blocks"]
        self.zeros = memoryview(bytearray(L))
        self.fbuf = memoryview(bytearray(HL + L))   # frames this unit sends (under lock)
        self.rbuf = memoryview(bytearray(HL + L))   # DU: answers to pulls (under lock)
        self.pbuf = memoryview(bytearray(L))        # PU: P[n] (under lock)
        self.obuf = memoryview(bytearray(bs))       # DU: Dold (under lock)
        self.ack = bytearray(1)
        self.ver = bytearray(self.nb) if self.role == "parity" else None

    def length_error(self, L):
        bs = self.u.bs
        if L < bs or L % bs:
            return "parity block length must be a multiple of the block size %d, got %d" % (bs, L)
        if HL + L + 1 > self.u.link.max_payload:
            return "parity block length %d does not fit the board's %d-byte frames" % (L, self.u.link.max_payload)
        return None

    def t720_for(self, L):
        """Fig 11: block length, number of parity blocks (S1001: floor(capacity / L), I1)
        and the first parity block number of each logical volume (I2)."""
        bs = self.u.bs
        vols = [{"volume": v["id"], "first_block": a * bs // L} for a, v in self.segs]
        return {"block_length": L, "blocks": self.area_blocks * bs // L, "volumes": vols}

    def save(self):
        self.u.sm.save()

    # ---- the unit's own parity blocks --------------------------------------------------
    async def io(self, n, buf, write):
        """Read (or write) parity block n of this unit's area through the cache path."""
        u = self.u
        bs = u.bs
        m = self.m
        ab = n * m
        i = 0
        while i < m:
            a = ab + i
            j = len(self.segs) - 1
            while self.segs[j][0] > a:
                j -= 1
            a0, v = self.segs[j]
            lba = a - a0
            k = min(m - i, v["blocks"] - lba)
            g = u.group(v["group"])
            part = buf[i * bs:(i + k) * bs]
            if write:
                await cha.write_blocks(u, g, v["start"] + lba, k, part)
            else:
                st = await cha.read_blocks(u, g, v["start"] + lba, k, part)
                if st not in GOOD:
                    return st
            i += k
        if write and u.write_through:
            await cha.destage(u)
        return wire.OK

    # ---- frames ----------------------------------------------------------------------
    async def _request(self, k, data, into, timeout=TIMEOUT_MS):
        link = self.u.link
        for _ in range(200):
            p = link.start(wire.CH_PEER + k, wire.K_PBLOCK, b"", data, into)
            if p is None:
                await sleep_ms(2)
                continue
            st = await link.finish(p, timeout)
            if st != wire.E_BUSY:
                return st, p.n
            self.cnt["busy_retries"] += 1
            await sleep_ms(2)
        return wire.E_BUSY, 0

    async def send_block(self, k, n, dst, flags, op, f):
        """Send the Fig 33 frame in f (data already in f[HL:]) to peer k; return the
        status and the receiver's row flag (1: the sender's 740 row turned OFF)."""
        L = self.L
        struct.pack_into(wire.PBLK_HEAD, f, 0, n, dst, self.me, flags, op, L)
        self.ack[0] = 0
        st, got = await self._request(k, f[:HL + L], self.ack)
        if st == wire.OK:
            self.cnt["tx_blocks"] += 1
            self.cnt["tx_bytes"] += L
        return st, (self.ack[0] if got else 0)

    def pull_start(self, k, n, dst, op, req, into):
        struct.pack_into(wire.PBLK_HEAD, req, 0, n, dst, self.me, wire.PB_REQUEST, op, 0)
        return self.u.link.start(wire.CH_PEER + k, wire.K_PBLOCK, b"", req, into)

    async def pull_finish(self, p, n, into):
        if p is None:
            return wire.E_BUSY
        st = await self.u.link.finish(p, TIMEOUT_MS)
        if st != wire.OK:
            return st
        if p.n != HL + self.L or struct.unpack_from("<I", into, 0)[0] != n:
            return wire.E_BAD_LENGTH
        self.cnt["rx_blocks"] += 1
        self.cnt["rx_bytes"] += self.L
        return st

    async def pull(self, srcs, n, op, reqs, bufs):
        """Ask every (unit, peer) in srcs for its block n at once; data in bufs[i][HL:].
        Only a source that answered BUSY is asked again: a copy already served stands
        (the source may have sent deltas for the block since)."""
        todo = list(range(len(srcs)))
        for _ in range(200):
            ps = []
            for i in todo:
                s = srcs[i]        # (unit, peer) or (unit, peer, its own op)
                ps.append(self.pull_start(s[1], n, s[0], s[2] if len(s) > 2 else op, reqs[i], bufs[i]))
            busy = []
            for j in range(len(todo)):
                i = todo[j]
                st = await self.pull_finish(ps[j], n, bufs[i])
                if st == wire.E_BUSY:
                    busy.append(i)
                elif st != wire.OK:
                    for q in ps[j + 1:]:
                        await self.pull_finish(q, n, bufs[i])
                    return st
            if not busy:
                return wire.OK
            todo = busy
            self.cnt["busy_retries"] += 1
            await sleep_ms(2)
        return wire.E_BUSY

    async def ctrl(self, k, msg, timeout=TIMEOUT_MS):
        buf = bytearray(1024)
        link = self.u.link
        data = json.dumps(msg).encode()
        st = wire.E_BUSY
        for _ in range(200):
            p = link.start(wire.CH_PEER + k, wire.K_PEER, bytes([CTRL]), data, buf)
            if p is None:
                await sleep_ms(2)
                continue
            st = await link.finish(p, timeout)
            if st != wire.E_BUSY:
                break
            await sleep_ms(2)
        try:
            r = json.loads(bytes(buf[:p.n])) if (p is not None and p.n) else {}
        except ValueError:
            r = {}
        if st != wire.OK and "error" not in r:
            r["error"] = "unit on peer %d: %s" % (k, wire.status_name(st))
        return st, r

    async def peer(self, unit):
        """Peer index of a unit number (PU side), found by asking every path "who"."""
        k = self.peers.get(unit)
        if k is not None:
            return k
        for k in range(16):
            if k in self.peers.values():
                continue
            st, r = await self.ctrl(k, {"m": "who"}, 1000)
            if st == wire.OK and isinstance(r.get("unit"), int):
                self.peers[r["unit"]] = k
        return self.peers.get(unit, -1)

    # ---- 740 rows (PU) ---------------------------------------------------------------
    def row(self, unit):
        t740 = self.st["t740"]
        if t740:
            for r in t740["rows"]:
                if r["unit"] == unit:
                    return r
        return None

    def included(self, r, n):
        """Is unit r's contribution to P[n] in parity?  Blocks beyond its count are zeros."""
        if n >= r["blocks"] or not r["on"]:
            return True
        return core.bit_test(self.bm[r["unit"]], n)

    def include(self, r, n, on):
        bm = self.bm[r["unit"]]
        if on:
            core.bit_set(bm, n)
        else:
            core.bit_clear(bm, n)
        self.u.sm.dirty = True

    def new_row(self, unit, blocks, op, method, sync, include_all=False):
        bm = core.bitmap_new(blocks)
        if include_all:
            core.range_set(bm, 0, blocks)
        self.bm[unit] = bm
        return {"unit": unit, "on": True, "op": op, "method": method, "sync": sync,
                "blocks": blocks, "pos": 0, "inc": None}

    def row_off(self, r):
        r["on"] = False
        r["op"] = None
        r["pos"] = r["blocks"]
        self.bm.pop(r["unit"], None)

    def random_progress(self, r):
        """I9: a random-add row turns OFF when all its blocks are completed; the rows of
        a synchronous random initialization turn OFF together (13A: all ON or all OFF)."""
        if core.count(self.bm[r["unit"]], 0, r["blocks"]) < r["blocks"]:
            return False
        if not r["sync"]:
            self.row_off(r)
            self.u.warn("parity unit: unit %d completed by the random method" % r["unit"])
            return True
        rows = [x for x in self.st["t740"]["rows"] if x["on"] and x["sync"] and x["op"] == "random"]
        for x in rows:
            if core.count(self.bm[x["unit"]], 0, x["blocks"]) < x["blocks"]:
                return False
        for x in rows:
            self.row_off(x)
        self.u.warn("parity unit: random initialization complete")
        return True

    def members(self):
        t = self.st["t710"]
        return list(t["data_units"]) if t else []

    def view740(self, form=None):
        t740 = self.st["t740"]
        if t740 is None:
            return None
        form = form or t740["form"]
        rows = []
        for r in t740["rows"]:
            row = {"unit": r["unit"], "recalc": "ON" if r["on"] else "OFF"}
            if r["on"]:
                row["op"] = r["op"]
                if form == "13B":
                    row["position"] = r["pos"] - 1 if r["method"] == "sequential" or r["op"] == "delete" else None
                elif form == "13C":
                    # delete: blocks whose contribution is no longer in parity (I11)
                    row["completed"] = _ranges(self.bm[r["unit"]], r["blocks"], r["op"] != "delete")
            rows.append(row)
        return {"form": form, "rows": rows}

    def info(self):
        st = self.st
        d = {"role": self.role, "unit": self.me, "group": self.gid, "counters": self.cnt}
        if self.role == "parity":
            d.update({"busy": st["busy"], "rebuilding": st["rebuilding"], "restore": st["restore"],
                      "last_restore": st.get("last_restore"), "peers": self.peers})
        else:
            d.update({"member": st["member"], "op": st["op"], "sent": st["sent"], "pu": st["pu"],
                      "read_send": st["read_send"], "restoring": st["restoring"],
                      "doubt": list(st.get("doubt") or [])})
        return d

    # ---- host I/O (DU: Fig 27 write delta; PU: the parity area is not host-writable) ----
    def needs_delta(self, n):
        """I8: during a sequential transfer only blocks already sent (build / add) or not
        yet sent (delete) carry a delta; a member otherwise always sends one."""
        st = self.st
        if not st["member"] or n >= self.nb:
            return False
        op = st["op"]
        if op == "build" or op == "add":
            return n < st["sent"]
        if op == "delete":
            return n >= st["sent"]
        return True

    def acked(self, row_off):
        if row_off and self.st["op"] == "random":
            self.st["op"] = None
            self.u.sm.dirty = True

    async def write_hook(self, u, v, lba, count, data):
        self.check()
        st = self.st
        if self.role == "parity":
            return wire.E_STATE if st["t720"] is not None else None
        if st["restoring"]:
            return wire.E_STATE
        bs = u.bs
        g = u.group(v["group"])
        glba = v["start"] + lba
        a0 = self.vstart[v["id"]] + lba
        async with self.lock:
            m = self.m
            i = 0
            while i < count:
                ab = a0 + i
                if m:
                    n = ab // m
                    k = min(count - i, (n + 1) * m - ab)
                else:
                    n = -1
                    k = count - i
                chunk = data[i * bs:(i + k) * bs]
                if n >= 0 and self.needs_delta(n):
                    f = self.fbuf
                    x = f[HL:HL + self.L]
                    x[:] = self.zeros
                    off = (ab - n * m) * bs
                    for j in range(k):
                        old = self.obuf
                        s = await cha.read_blocks(u, g, glba + i + j, 1, old)   # S6001
                        if s not in GOOD:
                            return s
                        core.xor_into(x[off + j * bs:off + (j + 1) * bs], [old, chunk[j * bs:(j + 1) * bs]])  # S6002
                    r0 = self.pu_resets
                    s, off_flag = await self.send_block(st["pu_peer"], n, st["pu"], wire.PB_HOST,
                                                        wire.PB_OP_NONE, f)                       # S6003
                    if s != wire.OK or self.pu_resets != r0:
                        # the PU may have applied this delta and lost the answer, or
                        # applied it before a reset and again after: P[n] is in doubt
                        self.doubt(n)
                    if s != wire.OK:
                        return s
                    self.cnt["deltas_sent"] += 1
                    self.acked(off_flag)
                await cha.write_blocks(u, g, glba + i, k, chunk)
                i += k
            if u.write_through:
                await cha.destage(u)
        return wire.OK

    # ---- DU: parity blocks in doubt after a PU reset or a lost answer -------------------
    def on_frame(self, ch, kind, seq, payload):
        """Link frames that are not requests: PEER_RESET from the PU's path means the
        PU's board restarted."""
        if kind == wire.K_PEER_RESET and len(payload) >= 1 and self.st and payload[0] == self.st["pu_peer"]:
            self.pu_resets += 1

    def doubt(self, n):
        st = self.st
        d = st.setdefault("doubt", [])
        if n not in d:
            d.append(n)
            self.save()
        if not self.resolving:
            self.resolving = True
            asyncio.create_task(self.resolve())

    async def resolve(self):
        """Ask the PU to recompute the blocks in doubt (outside this unit's lock: the
        PU pulls this unit's copy) until it has done so."""
        st = self.st
        try:
            while st.get("doubt") and st["member"] and self.u.sm.t.get("parity") is st:
                blocks = list(st["doubt"])
                s, _ = await self.ctrl(st["pu_peer"], {"m": "recompute", "blocks": blocks})
                if s == wire.OK:
                    st["doubt"] = [n for n in st["doubt"] if n not in blocks]
                    self.save()
                else:
                    await sleep_ms(300)
        finally:
            self.resolving = False

    async def read_hook(self, u, v, lba, count, out):
        self.check()
        st = self.st
        if self.role != "data":
            return None
        if st["restoring"]:
            return wire.E_STATE
        if not (st["member"] and st["op"] == "random" and st["read_send"]):
            return None
        # Fig 23 / Fig 26 option: a host read sends the blocks it touches to the PU
        g = u.group(v["group"])
        async with self.lock:
            s = await cha.read_blocks(u, g, v["start"] + lba, count, out)
            if s not in GOOD:
                return s
            a0 = self.vstart[v["id"]] + lba
            first = a0 // self.m
            last = min((a0 + count - 1) // self.m, self.nb - 1)
            for n in range(first, last + 1):
                if st["op"] != "random":
                    break
                f = self.fbuf
                if await self.io(n, f[HL:HL + self.L], False) not in GOOD:
                    break
                s2, off_flag = await self.send_block(st["pu_peer"], n, st["pu"], wire.PB_PARITY,
                                                     wire.PB_OP_READSEND, f)
                if s2 != wire.OK:
                    break
                self.acked(off_flag)
        return wire.OK

    # ---- PBLOCK frames arriving ----------------------------------------------------------
    async def on_block(self, u, req, p):
        self.check()
        link = u.link
        if len(p) < HL:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        n, dst, src, flags, op, ln = struct.unpack_from(wire.PBLK_HEAD, p, 0)
        if self.st["t720"] is None or dst != self.me:
            return link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
        if flags & wire.PB_REQUEST:
            if ln != 0 or len(p) != HL:
                return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
            return await self.serve(req, n, src, op)
        if ln != self.L or len(p) != HL + ln:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        self.cnt["rx_blocks"] += 1
        self.cnt["rx_bytes"] += ln
        data = p[HL:HL + ln]
        off = 0
        if self.role == "parity":
            st, off = await self.apply(n, src, flags, op, data)
        else:
            st = await self.restored(n, op, data)
        link.respond(req.ch, req.kind, req.seq, st, b"\x01" if off else b"")

    async def serve(self, req, n, src, op):
        """A DU sends its copy of block n (S1010, S4011, S9002, S7003-S7004, S8003-S8004);
        zeros for a block it does not have (I4, S8003)."""
        st = self.st
        link = self.u.link
        if self.role != "data" or src != st["pu"]:
            return link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
        async with self.lock:
            f = self.rbuf
            d = f[HL:HL + self.L]
            if n < self.nb:
                s = await self.io(n, d, False)
                if s not in GOOD:
                    return link.respond(req.ch, req.kind, req.seq, s)
            else:
                d[:] = self.zeros
            name = st["op"]
            if name in OPS and OPS[name] == op and n + 1 > st["sent"]:
                st["sent"] = n + 1
                self.save()    # I8 after a reset of this board: saved before the copy goes out
            flags = wire.PB_PARITY if op in (wire.PB_OP_BUILD, wire.PB_OP_ADD, wire.PB_OP_DELETE,
                                             wire.PB_OP_REBUILD) else 0
            struct.pack_into(wire.PBLK_HEAD, f, 0, n, src, self.me, flags, op, self.L)
            self.cnt["tx_blocks"] += 1
            self.cnt["tx_bytes"] += self.L
            link.respond(req.ch, req.kind, req.seq, wire.OK, f)

    async def apply(self, n, src, flags, op, data):
        """PU: P[n] ^= x for a write delta (S6004-S6006, and the random methods' writes)
        or a read-send copy (included only if block n is not completed yet, I9)."""
        if n >= self.nb:
            return wire.E_OUT_OF_RANGE, 0
        r = self.row(src)
        if r is None or src not in self.members():
            return wire.E_STATE, 0
        if not flags & (wire.PB_HOST | wire.PB_PARITY):
            return wire.E_BAD_PARAM, 0
        async with self.lock:
            random = r["on"] and r["op"] in ("random", "delete") and n < r["blocks"]
            if flags & wire.PB_PARITY:
                if op != wire.PB_OP_READSEND or not (r["on"] and r["op"] == "random") or self.included(r, n):
                    self.cnt["readsend_ignored"] += 1
                    return wire.OK, 0 if r["on"] else 1
            s = await self.io(n, self.pbuf, False)
            if s not in GOOD:
                return s, 0
            core.xor_acc(self.pbuf, data)
            await self.io(n, self.pbuf, True)
            self.ver[n] = (self.ver[n] + 1) & 0xFF
            if flags & wire.PB_HOST:
                self.cnt["deltas_applied"] += 1
            else:
                self.cnt["copies_applied"] += 1
            off = 0
            if random and not self.included(r, n):
                self.include(r, n, True)
                if r["op"] == "random" and self.random_progress(r):
                    off = 1
                self.save()      # the block counts as included from now on: before the reply
            elif not r["on"]:
                off = 1
        return wire.OK, off

    async def restored(self, n, op, data):
        """The failed DU writes a restored block (S7008-S7009); blocks beyond its own
        count are not written (S8009)."""
        r = self.st["restoring"]
        if op != wire.PB_OP_RESTORE or not r:
            return wire.E_STATE
        if n < self.nb:
            async with self.lock:
                await self.io(n, data, True)
            r["written"] += 1
            self.cnt["restored_written"] += 1
        else:
            r["ignored"] += 1
            self.cnt["restored_ignored"] += 1
        self.u.sm.dirty = True
        return wire.OK

    # ---- control messages -----------------------------------------------------------------
    async def on_ctrl(self, u, req, p):
        self.check()
        try:
            msg = json.loads(bytes(p[1:]))
            m = msg["m"]
            fn = getattr(self, "c_" + m)
        except (ValueError, KeyError, TypeError, AttributeError):
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_BAD_PARAM, b'{"error": "bad control message"}')
        try:
            st, reply = await fn(msg, req.ch - wire.CH_PEER)
        except Refused as e:
            st, reply = e.args[0], {"error": e.args[1]}
        u.link.respond(req.ch, req.kind, req.seq, st, json.dumps(reply).encode())

    async def c_who(self, msg, k):
        return wire.OK, {"unit": self.me, "role": self.role}

    def _du(self):
        if self.role != "data":
            raise Refused(wire.E_STATE, "unit %d is not a data storage unit" % self.me)

    async def c_settings(self, msg, k):
        """S1004-S1006 / S2004-S2007 / S3004-S3006 / S4005-S4007 / S5005-S5007: compute
        this unit's block count from L and create its tables 710 / 720."""
        self._du()
        st = self.st
        L = msg["L"]
        err = self.length_error(L)
        if err:
            raise Refused(wire.E_BAD_PARAM, err)
        if st["member"] and st["pu"] != msg["pu"]:
            raise Refused(wire.E_STATE, "unit %d already belongs to parity unit %d" % (self.me, st["pu"]))
        if st["restoring"]:
            raise Refused(wire.E_STATE, "unit %d is being restored" % self.me)
        async with self.lock:
            st["prev"] = {"t710": st["t710"], "t720": st["t720"], "pu": st["pu"], "pu_peer": st["pu_peer"]}
            st["t710"] = {"group": self.gid, "data_units": msg["data_units"], "parity_unit": msg["pu"]}
            st["t720"] = self.t720_for(L)
            st["pu"] = msg["pu"]
            st["pu_peer"] = k
            self._geometry()
            self.save()
        n = self.nb
        reply = {"n": n}
        if "np" in msg:                      # Fig 21 S2006: Np < Ni -> cannot (I3: equal can)
            reply["ok"] = msg["np"] >= n
        return wire.OK, reply

    async def c_cancel(self, msg, k):
        """I5: a rejected request rolls back the tables it created."""
        self._du()
        st = self.st
        prev = st["prev"]
        if prev:
            async with self.lock:
                for key in ("t710", "t720", "pu", "pu_peer"):
                    st[key] = prev[key]
                st["prev"] = None
                self._geometry()
                self.save()
        return wire.OK, {}

    async def c_start(self, msg, k):
        """The unit enters the group (or a procedure starts on it): sent = 0."""
        self._du()
        st = self.st
        async with self.lock:
            st["member"] = True
            st["op"] = msg["op"]
            st["sent"] = 0
            st["read_send"] = bool(msg.get("read_send"))
            st["prev"] = None
            self.save()
        return wire.OK, {}

    async def c_done(self, msg, k):
        self._du()
        async with self.lock:
            self.st["op"] = None
            self.save()
        return wire.OK, {}

    async def c_left(self, msg, k):
        """S9006 / I11: the unit left the group; its 710 is cleared, its 720 stays."""
        self._du()
        st = self.st
        async with self.lock:
            st["member"] = False
            st["op"] = None
            st["t710"] = None
            self.save()
        return wire.OK, {}

    async def c_restored(self, msg, k):
        self._du()
        st = self.st
        r = st["restoring"]
        st["restoring"] = None
        await cha.destage(self.u)
        self.save()
        self.u.warn("unit %d restored from parity unit %d: %d blocks written, %d not written, %d unprotected"
                    % (self.me, st["pu"], r["written"] if r else 0, r["ignored"] if r else 0,
                       msg.get("unprotected", 0)))
        return wire.OK, {"written": r["written"] if r else 0}

    async def c_recompute(self, msg, k):
        """PU: a DU is not sure its deltas for these blocks were applied exactly once
        (this board was reset while one was in flight, or an answer was lost): P[n] again
        from the copy of every member whose contribution is included."""
        if self.role != "parity" or self.st["t720"] is None:
            raise Refused(wire.E_STATE, "unit %d holds no parity" % self.me)
        blocks = msg["blocks"]
        units = self.members()
        peers = dict(await self._peers_of(units))
        reqs, bufs = self._bufs(len(units))

        def srcs_of(n):
            out = []
            for x in units:
                r = self.row(x)
                if n < r["blocks"] and self.included(r, n):
                    out.append((x, peers[x]))
            return out

        for n in blocks:
            if not isinstance(n, int) or n < 0 or n >= self.nb:
                continue
            srcs = await self._consistent(n, srcs_of, wire.PB_OP_REBUILD, reqs, bufs)
            try:
                p = self.pbuf
                p[:] = self.zeros
                for i in range(len(srcs)):
                    core.xor_acc(p, bufs[i][HL:])
                await self.io(n, p, True)
                self.ver[n] = (self.ver[n] + 1) & 0xFF
            finally:
                self.lock.release()
            self.cnt["recomputed"] += 1
        return wire.OK, {}

    async def c_restore(self, msg, k):
        """PU: restore request of a failed DU (S7001 / S8001)."""
        if self.role != "parity":
            raise Refused(wire.E_STATE, "unit %d is not the parity unit" % self.me)
        unit = msg["unit"]
        self.peers[unit] = k
        return self.start_restore(unit, msg["method"], bool(msg.get("paused")))

    # ---- management ops: PU --------------------------------------------------------------
    def _pu(self):
        if self.role != "parity":
            raise Refused(wire.E_STATE, "unit %d is not a parity storage unit" % self.me)

    def _idle(self):
        st = self.st
        if st["busy"]:
            raise Refused(wire.E_STATE, "parity unit busy: %s in progress" % st["busy"])
        if st["rebuilding"]:
            raise Refused(wire.E_STATE, "parity unit is rebuilding its parity")
        if st["restore"]:
            raise Refused(wire.E_STATE, "unit %d is being restored" % st["restore"]["unit"])

    def _snapshot(self):
        st = self.st
        return {"t710": st["t710"], "t720": st["t720"], "t730": st["t730"], "t740": st["t740"],
                "bm": dict(self.bm)}

    def _rollback(self, snap):
        st = self.st
        for key in ("t710", "t720", "t730", "t740"):
            st[key] = snap[key]
        self.bm = snap["bm"]
        self._geometry()
        self.save()

    async def _cancel_all(self, told):
        for unit in told:
            await self.ctrl(self.peers[unit], {"m": "cancel"})

    async def zero_parity(self):
        """I6: parity that starts from nothing starts from zero."""
        for n in range(self.nb):
            async with self.lock:
                await self.io(n, self.zeros, True)
                self.ver[n] = (self.ver[n] + 1) & 0xFF

    async def op_setup(self, cmd):
        """Fig 15 settings screen -> synchronous initial build: Fig 14 (check on the PU),
        Fig 21 (check on the DUs), Fig 23 (random initialization)."""
        self._pu()
        L = _int(cmd, "block_length", 1, 65536)
        dus = cmd.get("data_units")
        if (not isinstance(dus, list) or not dus or len(dus) > 15 or len(set(dus)) != len(dus)
                or any(not isinstance(x, int) or isinstance(x, bool) or x < 1 or x > 255 or x == self.me
                       for x in dus)):
            raise Refused(wire.E_BAD_PARAM, "data_units must list 1..15 distinct unit numbers other than %d"
                          % self.me)
        pu = cmd.get("parity_unit", self.me)
        if pu != self.me:
            raise Refused(wire.E_BAD_PARAM, "parity_unit %r: this is unit %d" % (pu, self.me))
        method = _choice(cmd, "method", METHODS, "sequential")
        check = _choice(cmd, "capacity_check", ("parity", "data"), "parity")
        form = _choice(cmd, "form", FORMS, self.form)
        err = self.length_error(L)
        if err:
            raise Refused(wire.E_BAD_PARAM, err)
        self._idle()
        st = self.st
        snap = self._snapshot()
        old = self.members()
        st["t710"] = {"group": self.gid, "data_units": list(dus), "parity_unit": self.me}   # S1002
        st["t720"] = self.t720_for(L)                                                        # S1001
        self._geometry()
        np_ = self.nb
        counts = {}
        judged = {}
        told = []
        for du in dus:                                                   # S1003 / S2003 / S3003
            k = await self.peer(du)
            if k < 0:
                await self._cancel_all(told)
                self._rollback(snap)
                raise Refused(wire.E_PATH_DOWN, "unit %d cannot be reached" % du)
            msg = {"m": "settings", "L": L, "data_units": dus, "pu": self.me, "method": method}
            if check == "data":
                msg["np"] = np_
            s, r = await self.ctrl(k, msg)
            if s != wire.OK:
                await self._cancel_all(told)
                self._rollback(snap)
                raise Refused(s, "unit %d: %s" % (du, r.get("error")))
            told.append(du)
            counts[du] = r["n"]                                          # S1006 (I21: Fig 21 too)
            judged[du] = r.get("ok", r["n"] <= np_)
        if check == "parity":
            bad = [du for du in dus if counts[du] > np_]                 # S1007 / S3007
        else:
            bad = [du for du in dus if not judged[du]]                   # S2008
        if bad:                                                          # S1015 / S2016 / S3009
            await self._cancel_all(told)
            self._rollback(snap)
            self.u.warn(MSG_SYNC)
            return wire.E_STATE, {"error": MSG_SYNC, "units": bad, "parity_blocks": np_,
                                  "blocks": [[du, counts[du]] for du in dus]}
        st["t730"] = [{"unit": self.me, "blocks": np_}] + [{"unit": du, "blocks": counts[du]} for du in dus]
        st["t740"] = {"form": form, "rows": [self.new_row(du, counts[du], "build" if method == "sequential"
                                                          else "random", method, True) for du in dus]}
        for du in old:                                                   # 3.6: listed-out units leave
            k = await self.peer(du) if du not in dus else -1
            if k >= 0:
                await self.ctrl(k, {"m": "left"})
        for du in dus:           # no deltas until the parity is zero (sent = 0: nothing sent yet)
            await self.ctrl(self.peers[du], {"m": "start", "op": "build"})
        await self.zero_parity()
        self.save()
        reply = {"parity_blocks": np_, "blocks": [[du, counts[du]] for du in dus], "job": None}
        if method == "random":                                           # Fig 23: after S3008
            rs = bool(cmd.get("read_send"))
            for du in dus:
                await self.ctrl(self.peers[du], {"m": "start", "op": "random", "read_send": rs})
            return wire.OK, reply
        st["busy"] = "build"                                             # S1009 - S1014
        self.save()
        reply["job"] = self.run_job("pbuild", "parity-build", np_, cmd.get("paused"), self.j_build)
        return wire.OK, reply

    async def op_change(self, cmd):
        """Fig 25 settings screen: add a DU (Fig 24 sequential, Fig 26 random) or delete
        one (Fig 32)."""
        self._pu()
        add = cmd.get("add")
        dele = cmd.get("delete")
        if add is None and dele is None and "form" not in cmd:
            t720 = self.st["t720"]
            return wire.OK, {"current": {"parity_unit": self.me, "data_units": self.members(),
                                         "block_length": t720["block_length"] if t720 else None}}
        if add is None and dele is None and self.st["t740"] is not None:
            # which form of table 740 is kept (13A / 13B / 13C: "any one ... may be used")
            self.st["t740"]["form"] = _choice(cmd, "form", FORMS, None)
            self.save()
            return wire.OK, {"form": self.st["t740"]["form"]}
        if (add is None) == (dele is None):
            raise Refused(wire.E_BAD_PARAM, "give one of add or delete")
        self._idle()
        if add is not None:
            return await self._add(cmd, _int(cmd, "add", 1, 255))
        return await self._delete(cmd, _int(cmd, "delete", 1, 255))

    async def _add(self, cmd, unit):
        st = self.st
        method = _choice(cmd, "method", METHODS, "sequential")
        if unit == self.me or unit in self.members():
            raise Refused(wire.E_BAD_PARAM, "unit %d is already in the parity group" % unit)
        first = not self.members()                                       # S4001 / S5001
        snap = self._snapshot()
        if first:                                                        # S4002-S4003 / S5002-S5003
            L = _int(cmd, "block_length", 1, 65536)
            err = self.length_error(L)
            if err:
                raise Refused(wire.E_BAD_PARAM, err)
            st["t710"] = {"group": self.gid, "data_units": [], "parity_unit": self.me}
            st["t720"] = self.t720_for(L)
            st["t730"] = None
            st["t740"] = None
            self.bm = {}
            self._geometry()
        else:                                                            # I7
            L = st["t720"]["block_length"]
            if cmd.get("block_length", L) != L:
                raise Refused(wire.E_BAD_PARAM, "block_length is %d; changing it needs a synchronous build" % L)
        np_ = self.nb
        k = await self.peer(unit)
        if k < 0:
            self._rollback(snap)
            raise Refused(wire.E_PATH_DOWN, "unit %d cannot be reached" % unit)
        s, r = await self.ctrl(k, {"m": "settings", "L": L, "data_units": self.members() + [unit],
                                   "pu": self.me, "method": method})     # S4004 / S5004
        if s != wire.OK:
            self._rollback(snap)
            raise Refused(s, "unit %d: %s" % (unit, r.get("error")))
        n = r["n"]                                                       # S4007 / S5007
        if n > np_:                                                      # S4008 -> S4016 / S5008 -> S5010
            await self.ctrl(k, {"m": "cancel"})
            self._rollback(snap)
            self.u.warn(MSG_ADD)
            return wire.E_STATE, {"error": MSG_ADD, "unit": unit, "blocks": n, "parity_blocks": np_}
        st["t710"]["data_units"].append(unit)                            # S4009 / S5009 (I7)
        if st["t730"] is None:
            st["t730"] = [{"unit": self.me, "blocks": np_}]
        st["t730"].append({"unit": unit, "blocks": n})
        if st["t740"] is None:
            st["t740"] = {"form": _choice(cmd, "form", FORMS, self.form), "rows": []}
        st["t740"]["rows"].append(self.new_row(unit, n, "add" if method == "sequential" else "random",
                                               method, False))
        if first:
            await self.zero_parity()
        self.save()
        if method == "random":                                           # Fig 26 ends after S5009
            await self.ctrl(k, {"m": "start", "op": "random", "read_send": bool(cmd.get("read_send"))})
            return wire.OK, {"unit": unit, "blocks": n, "parity_blocks": np_, "job": None}
        await self.ctrl(k, {"m": "start", "op": "add"})
        st["busy"] = "add"
        self.save()
        name = self.run_job("padd%d" % unit, "parity-add", n, cmd.get("paused"),
                            lambda job: self.j_add(job, unit))
        return wire.OK, {"unit": unit, "blocks": n, "parity_blocks": np_, "job": name}

    async def _delete(self, cmd, unit):
        st = self.st
        if unit not in self.members():
            raise Refused(wire.E_BAD_PARAM, "unit %d is not in the parity group" % unit)
        r = self.row(unit)
        partial = r["on"]
        if not partial:
            nr = self.new_row(unit, r["blocks"], "delete", "sequential", False, include_all=True)
            r.update(nr)
        r["op"] = "delete"
        r["method"] = "sequential"
        r["pos"] = 0
        r["partial"] = partial
        self.save()
        await self.ctrl(await self.peer(unit), {"m": "start", "op": "delete"})          # S9001
        st["busy"] = "delete"
        self.save()
        name = self.run_job("pdel%d" % unit, "parity-delete", r["blocks"], cmd.get("paused"),
                            lambda job: self.j_delete(job, unit))
        return wire.OK, {"unit": unit, "job": name}

    def start_restore(self, unit, method, paused):
        """S7002 / S8002: restore DU `unit` by method 1 (its own range, table 730) or
        method 2 (all Np blocks)."""
        st = self.st
        if unit not in self.members():
            raise Refused(wire.E_BAD_PARAM, "unit %d is not in the parity group" % unit)
        if method not in (1, 2):
            raise Refused(wire.E_BAD_PARAM, "method must be 1 or 2")
        if st["rebuilding"]:
            raise Refused(wire.E_STATE, "the parity unit itself is being rebuilt: double failure")
        if st["restore"]:
            raise Refused(wire.E_STATE, "unit %d is already being restored: double failure" % st["restore"]["unit"])
        if st["busy"] == "delete" or (st["busy"] == "add" and self.row(unit)["op"] == "add"):
            raise Refused(wire.E_STATE, "unit %d: wait for the %s in progress" % (unit, st["busy"]))
        form = st["t740"]["form"]
        for r in st["t740"]["rows"]:                                     # I13
            if not r["on"]:
                continue
            if form == "13A":
                raise Refused(wire.E_STATE, "table 740 (form 13A) cannot tell which blocks of unit %d are in "
                              "parity: wait until every row is OFF" % r["unit"])
            if form == "13B" and (r["method"] == "random" or r.get("partial")):
                raise Refused(wire.E_STATE, "table 740 (form 13B) cannot describe the random progress of "
                              "unit %d: wait until its row is OFF" % r["unit"])
        if method == 1:
            k = self.row(unit)["blocks"]                                 # table 730
        else:
            k = self.nb
        st["restore"] = {"unit": unit, "method": method, "range": k, "sent": 0, "asked": {},
                         "unprotected": 0, "first_unprotected": [], "ms": 0}
        self.save()
        name = self.run_job("prestore%d" % unit, "parity-restore", k, paused,
                            lambda job: self.j_restore(job, unit, method, k))
        return wire.OK, {"job": name, "range": k, "parity_unit": self.me}

    async def op_rebuild(self, cmd):
        """The PU lost its parity: ask every DU for its data and XOR it again."""
        self._pu()
        if self.st["t720"] is None:
            raise Refused(wire.E_STATE, "no parity group")
        self._idle()
        self.st["rebuilding"] = True
        self.save()
        name = self.run_job("prebuild", "parity-rebuild", self.nb, cmd.get("paused"), self.j_rebuild)
        return wire.OK, {"job": name}

    # ---- management ops: DU --------------------------------------------------------------
    async def op_restore(self, cmd):
        """S7000-S7001 / S8000-S8001: this unit lost its data; ask the PU for it."""
        self._du()
        st = self.st
        if not st["member"]:
            raise Refused(wire.E_STATE, "unit %d is not in a parity group" % self.me)
        method = _int(cmd, "method", 1, 2)
        st["restoring"] = {"method": method, "written": 0, "ignored": 0}
        self.save()
        s, r = await self.ctrl(st["pu_peer"], {"m": "restore", "unit": self.me, "method": method,
                                               "paused": bool(cmd.get("paused"))})
        if s != wire.OK:
            st["restoring"] = None
            self.save()
        return s, r

    # ---- jobs (PU) --------------------------------------------------------------------------
    def run_job(self, name, kind, total, paused, fn, pointer=0):
        job = self.u.jobs.add(Job(name, kind, total, pointer, bool(paused)))
        self.jobs_running[name] = job
        job.persist = {}     # mgmt saves SM on pause / resume; sync() records the flag
        self.save()
        asyncio.create_task(self._run(job, fn))
        return name

    async def _run(self, job, fn):
        try:
            await fn(job)
            job.state = DONE
        except Exception as e:  # a failed procedure is reported, not fatal
            job.state = FAILED
            job.note = "%s" % (e.args[0] if e.args else repr(e))
            self.u.warn("parity unit: %s failed: %s" % (job.name, job.note))
            st = self.st
            st["busy"] = None
            st["rebuilding"] = False
            st["restore"] = None
            self.save()
        self.jobs_running.pop(job.name, None)

    def _bufs(self, k):
        L = self.L
        return ([memoryview(bytearray(HL)) for _ in range(k)],
                [memoryview(bytearray(HL + L)) for _ in range(k)])

    async def _peers_of(self, units):
        out = []
        for unit in units:
            k = await self.peer(unit)
            if k < 0:
                raise Exception("unit %d cannot be reached" % unit)
            out.append((unit, k))
        return out

    async def j_build(self, job, resume=None):
        """S1009-S1014: every DU sends block n; P[n] = XOR of the copies.  resume: the
        block to go on from after a reset (each block recomputed)."""
        rows = list(self.st["t740"]["rows"])
        srcs_all = await self._peers_of([r["unit"] for r in rows])
        reqs, bufs = self._bufs(len(rows))
        if resume is not None:
            await self._recompute(job, resume, self.nb, [r["unit"] for r in rows], None)
        for n in range(self.nb if resume is None else 0):
            await job.gate()
            srcs = [srcs_all[i] for i in range(len(rows)) if n < rows[i]["blocks"]]
            s = await self.pull(srcs, n, wire.PB_OP_BUILD, reqs, bufs)            # S1010
            if s != wire.OK:
                raise Exception("block %d: %s" % (n, wire.status_name(s)))
            async with self.lock:                                                # S1011-S1012
                s = await self.io(n, self.pbuf, False)
                if s not in GOOD:
                    raise Exception("parity block %d unreadable: %s" % (n, wire.status_name(s)))
                for i in range(len(srcs)):
                    core.xor_acc(self.pbuf, bufs[i][HL:])
                await self.io(n, self.pbuf, True)
                self.ver[n] = (self.ver[n] + 1) & 0xFF
                self.cnt["copies_applied"] += len(srcs)
                for r in rows:                                                   # S1013
                    if n < r["blocks"]:
                        self.include(r, n, True)
                        r["pos"] = n + 1
            job.pointer = n + 1
        for r in rows:                                                           # S1014 (13A: all OFF)
            self.row_off(r)
        self.st["busy"] = None
        self.save()
        for _, k in srcs_all:
            await self.ctrl(k, {"m": "done"})
        job.note = "%d parity blocks from %d units" % (self.nb, len(rows))
        self.u.warn("parity unit: synchronous initial copy complete (%d blocks)" % self.nb)

    async def j_add(self, job, unit, resume=None):
        """S4010-S4015: the added DU sends its blocks; P[n] ^= copy."""
        r = self.row(unit)
        srcs = await self._peers_of([unit])
        reqs, bufs = self._bufs(1)
        if resume is not None:
            await self._recompute(job, resume, r["blocks"], [unit], None)
        for n in range(r["blocks"] if resume is None else 0):
            await job.gate()
            s = await self.pull(srcs, n, wire.PB_OP_ADD, reqs, bufs)             # S4011
            if s != wire.OK:
                raise Exception("block %d: %s" % (n, wire.status_name(s)))
            async with self.lock:
                s = await self.io(n, self.pbuf, False)
                if s not in GOOD:
                    raise Exception("parity block %d unreadable: %s" % (n, wire.status_name(s)))
                core.xor_acc(self.pbuf, bufs[0][HL:])                             # S4012
                await self.io(n, self.pbuf, True)                                 # S4013
                self.ver[n] = (self.ver[n] + 1) & 0xFF
                self.cnt["copies_applied"] += 1
                self.include(r, n, True)                                          # S4014
                r["pos"] = n + 1
            job.pointer = n + 1
        self.row_off(r)                                                           # S4015
        self.st["busy"] = None
        self.save()
        await self.ctrl(srcs[0][1], {"m": "done"})
        job.note = "unit %d added (%d blocks)" % (unit, r["blocks"])
        self.u.warn("parity unit: unit %d added" % unit)

    async def j_delete(self, job, unit, resume=None):
        """S9001-S9006: the deleted DU sends every block; P[n] ^= copy where its
        contribution was included (I11)."""
        st = self.st
        r = self.row(unit)
        srcs = await self._peers_of([unit])
        reqs, bufs = self._bufs(1)
        if resume is not None:
            await self._recompute(job, resume, r["blocks"], [], unit)
        for n in range(r["blocks"] if resume is None else 0):
            await job.gate()
            s = await self.pull(srcs, n, wire.PB_OP_DELETE, reqs, bufs)          # S9002
            if s != wire.OK:
                raise Exception("block %d: %s" % (n, wire.status_name(s)))
            async with self.lock:
                if self.included(r, n):
                    s = await self.io(n, self.pbuf, False)
                    if s not in GOOD:
                        raise Exception("parity block %d unreadable: %s" % (n, wire.status_name(s)))
                    core.xor_acc(self.pbuf, bufs[0][HL:])                         # S9003
                    await self.io(n, self.pbuf, True)                             # S9004
                    self.ver[n] = (self.ver[n] + 1) & 0xFF
                    self.cnt["copies_applied"] += 1
                    self.include(r, n, False)                                     # S9005
                r["pos"] = n + 1
            job.pointer = n + 1
        st["t710"]["data_units"].remove(unit)                                     # S9006 (I11)
        st["t730"] = [x for x in st["t730"] if x["unit"] != unit]
        st["t740"]["rows"] = [x for x in st["t740"]["rows"] if x["unit"] != unit]
        self.bm.pop(unit, None)
        st["busy"] = None
        self.save()
        await self.ctrl(srcs[0][1], {"m": "left"})
        job.note = "unit %d deleted" % unit
        self.u.warn("parity unit: unit %d deleted" % unit)

    async def _recompute(self, job, first, end, plus, minus):
        """A build / add / delete after a reset, blocks first..end-1: P[n] = XOR of the
        copies of every member whose contribution is in parity, with the units in `plus`
        (build, add) and without `minus` (delete); then 740 as the job would leave it.
        Each unit the job works on is pulled with the job's op so its I8 pointer moves
        on; the others as for a rebuild."""
        units = self.members()
        peers = dict(await self._peers_of(units))
        reqs, bufs = self._bufs(len(units))
        ops = {}
        for x in units:
            r = self.row(x)
            mine = x in plus or x == minus
            ops[x] = OPS[r["op"]] if (mine and r["on"] and r["op"] in OPS) else wire.PB_OP_REBUILD

        def srcs_of(n):
            out = []
            for x in units:
                r = self.row(x)
                if n < r["blocks"] and (x in plus or x == minus or self.included(r, n)):
                    out.append((x, peers[x], ops[x]))
            return out

        for n in range(first, end):
            await job.gate()
            srcs = await self._consistent(n, srcs_of, wire.PB_OP_REBUILD, reqs, bufs)
            try:
                p = self.pbuf
                p[:] = self.zeros
                for i in range(len(srcs)):
                    if srcs[i][0] != minus:
                        core.xor_acc(p, bufs[i][HL:])
                await self.io(n, p, True)
                self.ver[n] = (self.ver[n] + 1) & 0xFF
                self.cnt["copies_applied"] += len(srcs)
                for x in plus + ([minus] if minus is not None else []):
                    r = self.row(x)
                    if n < r["blocks"]:
                        self.include(r, n, x != minus)
                        r["pos"] = n + 1
            finally:
                self.lock.release()
            job.pointer = n + 1

    async def _consistent(self, n, srcs_of, op, reqs, bufs):
        """Pull the sources' copies of n; return the sources used (their data in bufs)
        with the lock held and P[n] unchanged since the pulls began."""
        while True:
            v0 = self.ver[n]
            srcs = srcs_of(n)
            s = await self.pull(srcs, n, op, reqs, bufs)
            if s != wire.OK:
                raise Exception("block %d: %s" % (n, wire.status_name(s)))
            await self.lock.acquire()
            if self.ver[n] == v0 and srcs == srcs_of(n):
                return srcs
            self.lock.release()
            self.cnt["retries"] += 1

    async def j_restore(self, job, unit, method, k, first=0):
        """S7002-S7007 / S8002-S8007 (restoring during an add: blocks already updated
        include the added unit, the others exclude it, I12).  first: the saved pointer
        after a reset (restored blocks are written again: the same data)."""
        st = self.st
        rs = st["restore"]
        t0 = ticks_ms() - rs.get("ms", 0)
        others = [x for x in self.members() if x != unit]
        peers = dict(await self._peers_of(others))
        kf = await self.peer(unit)
        rf = self.row(unit)
        reqs, bufs = self._bufs(len(others))
        f = memoryview(bytearray(HL + self.L))
        asked = rs["asked"]
        for x in others:
            asked.setdefault(str(x), 0)

        def srcs_of(n):
            return [(x, peers[x]) for x in others if self.included(self.row(x), n)]

        for n in range(first, k):
            await job.gate()
            if not self.included(rf, n):          # its contribution is not in parity (I12)
                if n < rf["blocks"]:
                    rs["unprotected"] += 1
                    if len(rs["first_unprotected"]) < MAX_LIST:
                        rs["first_unprotected"].append(n)
                job.pointer = n + 1
                continue
            srcs = await self._consistent(n, srcs_of, wire.PB_OP_RESTORE, reqs, bufs)   # S7003-S7004
            try:
                d = f[HL:]
                s = await self.io(n, d, False)                                           # S7005
                if s not in GOOD:
                    raise Exception("parity block %d unreadable: %s" % (n, wire.status_name(s)))
                for i in range(len(srcs)):
                    core.xor_acc(d, bufs[i][HL:])
            finally:
                self.lock.release()
            s, _ = await self.send_block(kf, n, unit, 0, wire.PB_OP_RESTORE, f)          # S7006-S7007
            if s != wire.OK:
                raise Exception("restored block %d to unit %d: %s" % (n, unit, wire.status_name(s)))
            for x in srcs:          # counted with the pointer (saved together)
                asked[str(x[0])] += 1
            rs["sent"] += 1
            job.pointer = n + 1
            rs["ms"] = ticks_diff(ticks_ms(), t0)
        rs["ms"] = ticks_diff(ticks_ms(), t0)
        st["restore"] = None
        st["last_restore"] = rs
        self.save()
        await self.ctrl(kf, {"m": "restored", "unprotected": rs["unprotected"]})
        job.note = "method %d: %d blocks sent to unit %d, %d unprotected" % (method, rs["sent"], unit,
                                                                            rs["unprotected"])
        self.u.warn("parity unit: unit %d restored (%s)" % (unit, job.note))

    async def j_rebuild(self, job, first=0):
        """The PU rebuilds its parity: each DU sends its included blocks (I14); after a
        reset from the saved pointer `first`."""
        st = self.st
        units = self.members()
        peers = dict(await self._peers_of(units))
        reqs, bufs = self._bufs(len(units))

        def srcs_of(n):
            out = []
            for x in units:
                r = self.row(x)
                if n < r["blocks"] and self.included(r, n):
                    out.append((x, peers[x]))
            return out

        for n in range(first, self.nb):
            await job.gate()
            srcs = await self._consistent(n, srcs_of, wire.PB_OP_REBUILD, reqs, bufs)
            try:
                p = self.pbuf
                p[:] = self.zeros
                for i in range(len(srcs)):
                    core.xor_acc(p, bufs[i][HL:])
                await self.io(n, p, True)
                self.ver[n] = (self.ver[n] + 1) & 0xFF
            finally:
                self.lock.release()
            job.pointer = n + 1
        st["rebuilding"] = False
        self.save()
        job.note = "%d parity blocks rebuilt from %d units" % (self.nb, len(units))
        self.u.warn("parity unit: parity rebuilt (%d blocks)" % self.nb)


def _op(pu, fn):
    async def op(u, cmd):
        pu.check()
        try:
            return await fn(cmd)
        except Refused as e:
            return e.args[0], {"error": e.args[1]}
    return op


def attach(u):
    pu = ParityUnit(u)
    for name, fn in (("parity_setup", pu.op_setup), ("parity_change", pu.op_change),
                     ("parity_rebuild", pu.op_rebuild), ("parity_restore", pu.op_restore)):
        u.ops[name] = _op(pu, fn)
    u.table_fns["parity_710"] = lambda u: pu.st["t710"]
    u.table_fns["parity_720"] = lambda u: pu.st["t720"]
    u.table_fns["parity_730"] = lambda u: pu.st["t730"]
    u.table_fns["parity_740"] = lambda u: pu.view740()
    u.table_fns["parity_740A"] = lambda u: pu.view740("13A")
    u.table_fns["parity_740B"] = lambda u: pu.view740("13B")
    u.table_fns["parity_740C"] = lambda u: pu.view740("13C")
    u.table_fns["parity_unit"] = lambda u: pu.info()
    u.write_hooks.append(pu.write_hook)
    u.read_hooks.append(pu.read_hook)
    u.peer_handlers[CTRL] = pu.on_ctrl
    u.peer_handlers[KIND_KEY | wire.K_PBLOCK] = pu.on_block
    u.sm.before_save.append(pu.sync)
    prev = u.link.on_frame

    def on_frame(ch, kind, seq, payload):
        if prev is not None:
            prev(ch, kind, seq, payload)
        pu.on_frame(ch, kind, seq, payload)

    u.link.on_frame = on_frame
    return pu
