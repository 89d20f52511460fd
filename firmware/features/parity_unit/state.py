# Parity storage unit (seed 000): one unit's runtime.  Its settings, its SM table
# "parity" (tables 710 / 720 / 730 / 740 of Figs 10-13, the procedures in progress), the
# geometry of its parity blocks (Fig 11: block length L, count N = floor(area / L), I1;
# the area is its volumes end to end in declaration order, I2), the buffers that go with
# it, and parity block n of its own area read or written through the cache.
import asyncio
import binascii

from firmware import store, wire
from firmware.raid import GOOD

HL = wire.PBLK_HEAD_LEN
FORMS = ("13A", "13B", "13C")
SEQ_GAP = 0x2000                # link seqs skipped over a reset (more than sent between SM saves)
COUNTERS = ("tx_blocks", "rx_blocks", "tx_bytes", "rx_bytes", "deltas_sent", "deltas_applied",
            "copies_applied", "readsend_ignored", "restored_written", "restored_ignored", "retries",
            "busy_retries", "recomputed", "pending_reconciled")


def new_state():
    return {"t710": None, "t720": None, "t730": None, "t740": None,
            "busy": None, "rebuilding": False, "restore": None,            # PU
            "pu": None, "pu_peer": None, "member": False, "op": None,       # DU
            "sent": 0, "read_send": False, "restoring": None, "prev": None,
            "doubt": [], "pending": []}


class ParityUnit:
    def __init__(self, u, reg, cfg):
        self.u = u
        self.reg = reg
        self.lock = asyncio.Lock()
        self.role = cfg["role"]
        self.me = cfg["unit"]
        self.gid = cfg.get("group", 1)
        self.form = cfg.get("form", "13B")
        self.cfg = cfg
        self.peers = {}          # unit number -> peer index (PU: found with "who")
        self.jobs_running = {}   # job name -> Job (PU)
        self.cnt = {}
        for k in COUNTERS:
            self.cnt[k] = 0
        self.paths = {}          # peer index -> {procedure: [blocks sent, blocks received]}
        self.pu_resets = 0       # DU: PEER_RESET notices from the PU's path (it rebooted)
        self.resolving = False   # DU: a task is asking the PU to recompute blocks in doubt
        self.held = None         # DU: the hold point a host write waits at (parity_hold)
        self.hold_ev = None
        self.monitor = None      # PU: the watch over its data units (monitor.py)
        self.inflight = {}       # DU: id(host data) -> blocks whose delta went out for it
        st = u.sm.t.get("parity")
        if st is None:
            st = new_state()
            u.sm.t["parity"] = st
            u.sm.save()
        for k, v in new_state().items():     # tables saved by an older firmware
            st.setdefault(k, v)
        self.st = st
        self.segs = []           # (first area block, volume) in declaration order (I2)
        self.vstart = {}
        a = 0
        for v in u.sm.t.get("volumes", []):
            self.segs.append((a, v))
            self.vstart[v["id"]] = a
            a += v["blocks"]
        self.area_blocks = a
        self.bm = {}             # unit -> bitmap of its blocks included in parity (ON rows)
        t740 = st["t740"]
        if t740:
            for r in t740["rows"]:
                if r.get("inc") is not None:
                    self.bm[r["unit"]] = bytearray(binascii.unhexlify(r["inc"]))
        self.geometry()
        # Peers remember recent request seqs (duplicate / stale suppression): after a
        # reset this board must not start again at seq 1, or its first requests to the
        # other units look like copies of old ones.  Saved with SM, resumed well ahead.
        seq = st.get("link_seq")
        if isinstance(seq, int):
            u.link.seq = (seq + SEQ_GAP) & 0xFFFF

    def geometry(self):
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

    def sync(self):
        """Before every SM save: the 740 bitmaps as hex, the jobs' pointers and pause."""
        st = self.st
        if self.u.sm.t.get("parity") is not st:
            return
        st["link_seq"] = self.u.link.seq
        jobs = {}
        for name in self.jobs_running:
            job = self.jobs_running[name]
            jobs[name] = {"pointer": job.pointer, "paused": job.state == "paused"}
        st["jobs"] = jobs
        rs = st["restore"]
        if rs:
            job = self.jobs_running.get("prestore%d" % rs["unit"])
            if job is not None:
                rs["pos"] = job.pointer
        t740 = st["t740"]
        if not t740:
            return
        for r in t740["rows"]:
            bm = self.bm.get(r["unit"])
            r["inc"] = binascii.hexlify(bm).decode() if (bm is not None and r["on"]) else None

    def bump(self, n):
        """P[n] changed (jobs that read it with pulled copies check this counter)."""
        self.ver[n] = (self.ver[n] + 1) & 0xFF

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
            part = buf[i * bs:(i + k) * bs]
            if write:
                await store.write_vol(u, v, lba, k, part)
            else:
                st = await store.read_vol(u, v, lba, k, part)
                if st not in GOOD:
                    return st
            i += k
        if write and u.write_through:
            await store.destage(u)
        return wire.OK

    async def write_p(self, n, p):
        """Store P[n] (under the lock)."""
        await self.io(n, p, True)
        self.bump(n)

    def info(self):
        st = self.st
        d = {"role": self.role, "unit": self.me, "group": self.gid, "counters": self.cnt}
        if self.role == "parity":
            d.update({"busy": st["busy"], "rebuilding": st["rebuilding"], "restore": st["restore"],
                      "last_restore": st.get("last_restore"), "peers": self.peers,
                      "auto_restore": self.cfg.get("auto_restore", False)})
        else:
            d.update({"member": st["member"], "op": st["op"], "sent": st["sent"], "pu": st["pu"],
                      "read_send": st["read_send"], "restoring": st["restoring"],
                      "doubt": list(st["doubt"]), "pending": list(st["pending"]), "held": self.held})
        return d
