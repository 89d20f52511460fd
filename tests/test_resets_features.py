"""Board resets in the middle of the feature jobs (issue 8): the board is killed with
SIGKILL (`u.restart()`, or kill / look at the persisted SM / boot) while a sparing copy or
feedback, a parity-unit build, add, delete or restoration (or a data unit between a write
delta and its data write), a volume-copy generation or
division, or a tape backup is part-way, and boots again from its persisted shared memory.  Every job goes on
from the pointer it had saved (read from the board's sm.json before it boots) and
finishes, and every write acknowledged before the kill reads back; a write in flight at
the kill may read back old or new, nothing else.

Each feature is killed once at a chosen point (jobs held and stepped, so the point is
exact) and once at a random moment while a host workload thread is running."""
import json
import random
import threading
import time

import pytest
from conftest import cut_power_at, have_micropython, rig_desc
from test_sparing import blocks_on, fill, make_faulty, unit_desc

from firmware import wire
from host.features import parity_unit as hp
from host.features import volcopy as vc
from host.features.tape import BackupHost, TapeDrive, restore
from host.hostio import block_content
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 4096


# ---- helpers ----------------------------------------------------------------------------

def saved(u, table):
    """A table as the board last persisted it (its sm.json), not as it is in RAM."""
    with open(u.state_dir / "board" / "sm.json") as f:
        return json.load(f)["tables"].get(table)


def _wait(pred, what, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.02)


def calm(fn, *args, **kw):
    """A management request, asked again while the board answers BUSY (every request
    worker taken, e.g. a parity unit serving deltas and recomputes from three units)."""
    for _ in range(200):
        try:
            return fn(*args, **kw)
        except StatusError as e:
            if e.status != wire.E_BUSY:
                raise
            time.sleep(0.02)
    return fn(*args, **kw)


def wait_job(u, name, timeout=60.0):
    end = time.monotonic() + timeout
    while True:
        j = calm(u.job, name)
        if j["state"] in ("done", "failed"):
            return j
        if time.monotonic() > end:
            raise TimeoutError("job %s not finished" % name)
        time.sleep(0.05)


class Churn:
    """A verifying host workload in a thread that lives through board resets.  A write
    that fails (the board died under it) is in flight: the blocks may read back as
    before or as written, until a later write of theirs is acknowledged."""

    def __init__(self, h, vols, seed, max_count=4):
        self.h = h
        self.vols = vols
        self.rng = random.Random(seed)
        self.max_count = max_count
        self.maybe = {}          # (vol, lba) -> generations a read may show
        self.bad = []
        self.writes = 0
        self.failed = 0
        self.up = threading.Event()
        self.up.set()
        self.stop = threading.Event()
        self.hold = threading.Lock()     # held by pause(): no request in between
        self.t = threading.Thread(target=self.run, daemon=True)

    def ok(self, vol, lba, data):
        v = self.h.verifier
        want = [v.gens.get((vol, lba), 0)] + sorted(self.maybe.get((vol, lba), ()))
        return any(data == (bytes(len(data)) if g == 0 else block_content(vol, lba, g, len(data), v.seed))
                   for g in want)

    def check(self, vol, lba, data):
        bs = self.h.verifier.block_size
        for i in range(len(data) // bs):
            if not self.ok(vol, lba + i, data[i * bs:(i + 1) * bs]):
                self.bad.append(self.h.verifier.describe(vol, lba + i, data[i * bs:(i + 1) * bs]))

    def step(self):
        v = self.rng.choice(self.vols)
        n = self.rng.randint(1, self.max_count)
        lba = self.rng.randrange(0, v["blocks"] - n + 1)
        if self.rng.random() < 0.6:
            data, gens = self.h.verifier.data(v["id"], lba, n)
            try:
                self.h.unit.write(v["id"], lba, data, port=self.h.port)
            except Exception:
                self.failed += 1
                for i in range(n):
                    self.maybe.setdefault((v["id"], lba + i), set()).add(gens[i])
                return False
            self.h.verifier.acknowledged(v["id"], lba, gens)
            for i in range(n):
                self.maybe.pop((v["id"], lba + i), None)
            self.writes += 1
        else:
            try:
                data = self.h.unit.read(v["id"], lba, n, port=self.h.port)
            except Exception:
                return False
            self.check(v["id"], lba, data)
        return True

    def run(self):
        while not self.stop.is_set():
            with self.hold:
                done = self.step()
            if not done:
                self.up.wait(30)
                time.sleep(0.05)

    def pause(self):
        self.hold.acquire()

    def resume(self):
        self.hold.release()

    def start(self):
        self.t.start()
        return self

    def finish(self):
        self.stop.set()
        self.t.join(60)

    def verify(self):
        """Read every block of every volume; return the bad ones (descriptions)."""
        u = self.h.unit
        for v in self.vols:
            for lba in range(0, v["blocks"], 8):
                n = min(8, v["blocks"] - lba)
                self.check(v["id"], lba, u.read(v["id"], lba, n, port=self.h.port))
        return self.bad


def kill_and_boot(u, churn=None):
    """SIGKILL the board, return its persisted SM as the killed board left it, boot it."""
    if churn is not None:
        churn.up.clear()
    u.kill()
    with open(u.state_dir / "board" / "sm.json") as f:
        sm = json.load(f)["tables"]
    u.start(configure=False)
    if churn is not None:
        churn.up.set()
    return sm


# ---- proactive sparing (seed 001) ----------------------------------------------------------

def sparing_state(u):
    st = saved(u, "sparing_state")
    return st["active"][0] if st and st["active"] else None


def start_sparing(rig, d=2):
    u, h = rig.unit(), rig.host()
    vols = u.table("volumes")
    fill(u, h, vols)
    g = u.table("groups")[0]
    make_faulty(u, h, d, blocks_on(g, d)[:2])
    return u, h, vols


@pytest.mark.parametrize("backup", ["journal", "group", "workdisk"])
def test_sparing_copy_killed_part_way_resumes_from_its_pointer_with_diverted_writes_kept(make_rig, backup):
    rig = make_rig(rig_desc(unit_desc(backup=backup, feedback_paused=True)))
    u, h, vols = start_sparing(rig)
    w0 = u.drives[2].counters["writes"]
    for lba, n in ((5, 2), (40, 3), (6, 1)):       # diverted to the backup area (acknowledged)
        h.write(0, lba, n)
    h.write(1, 0, 4)
    u.job("sparing0", "step", n=20)
    u.wait_for(lambda x: x.job("sparing0")["pointer"] == 20, what="20 rows copied")
    _wait(lambda: (sparing_state(u) or {}).get("ptr") == 20, "pointer 20 saved")
    h.write(0, 80, 2)        # acknowledged, then killed at once: no time for a periodic save
    before = {t: u.table(t) for t in ("T4", "journal", "T6", "T7", "T2")}
    sm = kill_and_boot(u)
    st = sm["sparing_state"]["active"][0]
    assert st["phase"] == "copying" and st["ptr"] == 20
    j = u.job("sparing0")
    assert j["pointer"] == 20 and j["state"] == "paused"           # the saved pointer, still held
    assert {t: u.table(t) for t in before} == before                 # backup area tables came back
    assert u.table("sparing")[-1]["phase"] == "copying"
    u.drives[2].accesses = []
    assert h.verify_all(0, 96) == 0 and h.verify_all(1, 96) == 0     # diverted writes read back
    assert u.drives[2].accesses == []                                # ... never from the faulty drive
    u.drives[4].accesses = []
    u.job("sparing0", "resume")
    assert u.wait_job("sparing0")["state"] == "done"
    copied = {lba for op, lba, _ in u.drives[4].accesses if op == "w"}
    assert copied == set(range(20, 64))                              # rows 0-19 were not copied again
    u.job("feedback0", "resume")
    u.wait_for(lambda x: x.table("sparing")[-1]["phase"] == "done", what="sparing done")
    assert u.table("groups")[0]["members"] == [0, 1, 4, 3]
    assert u.drives[2].counters["writes"] == w0
    assert h.verify_all(0, 96) == 0 and h.verify_all(1, 96) == 0


@pytest.mark.parametrize("backup", ["journal", "workdisk"])
def test_sparing_feedback_killed_part_way_goes_on_from_its_pointer(make_rig, backup):
    rig = make_rig(rig_desc(unit_desc(backup=backup, feedback_paused=True)))
    u, h, vols = start_sparing(rig)
    w0 = u.drives[2].counters["writes"]
    for lba in (0, 9, 17, 30, 61, 9):
        h.write(0, lba, 2)
    h.write(1, 33, 3)
    u.job("sparing0", "resume")
    u.wait_job("sparing0")
    total = u.job("feedback0")["total"]
    assert total >= 6
    u.job("feedback0", "step", n=3)
    u.wait_for(lambda x: x.job("feedback0")["pointer"] == 3, what="3 updates fed back")
    _wait(lambda: (sparing_state(u) or {}).get("fb_ptr") == 3, "feedback pointer saved")
    sm = kill_and_boot(u)
    assert sm["sparing_state"]["active"][0]["phase"] == "feedback"
    j = u.job("feedback0")
    assert (j["pointer"], j["total"], j["state"]) == (3, total, "paused")
    assert u.job("sparing0")["state"] == "done"
    assert h.verify_all(0, 96) == 0 and h.verify_all(1, 96) == 0
    h.write(0, 61, 1)                 # a track still to feed back: fed first, then written
    u.job("feedback0", "resume")
    u.wait_for(lambda x: x.table("sparing")[-1]["phase"] == "done", what="sparing done")
    s = u.table("sparing")[-1]
    assert s["feedback_pointer"] <= total
    assert u.table("groups")[0]["members"] == [0, 1, 4, 3]
    assert u.drives[2].counters["writes"] == w0
    assert h.verify_all(0, 96) == 0 and h.verify_all(1, 96) == 0


def test_sparing_killed_at_a_random_moment_under_a_workload_loses_no_acknowledged_write(make_rig):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    unit = unit_desc(backup="journal")
    unit["drive_blocks"] = 256
    unit["volume"] = [{"id": 0, "group": 0, "blocks": 384}, {"id": 1, "group": 0, "start": 384, "blocks": 384}]
    unit["sparing"]["work_volumes"] = [{"id": 10, "drive": 9, "start": 0, "tracks": 32},
                                       {"id": 11, "drive": 9, "start": 128, "tracks": 32}]
    rig = make_rig(rig_desc(unit))
    u, h = rig.unit(), rig.host()
    vols = u.table("volumes")
    fill(u, h, vols)
    g = u.table("groups")[0]
    make_faulty(u, h, 2, blocks_on(g, 2, nblocks=384)[:2])
    w0 = u.drives[2].counters["writes"]
    churn = Churn(h, vols, seed).start()
    u.job("sparing0", "resume")
    time.sleep(rng.uniform(0.05, 1.0))
    sm = kill_and_boot(u, churn)
    st = (sm.get("sparing_state") or {}).get("active") or []
    if st:       # killed while sparing: it went on from the pointers it had saved
        st = st[0]
        want = "resumed after a reset (%s, copy pointer %d, feedback %d/%d)" % (
            st["phase"], st["ptr"], st["fb_ptr"], st["fb_total"])
        assert any(want in w for w in u.table("warnings"))
    u.wait_for(lambda x: [s for s in x.table("sparing") if s["phase"] == "done"], timeout=60, what="sparing done")
    time.sleep(0.3)
    churn.finish()
    print("seed %d: killed %s; %d writes acknowledged, %d in flight" % (
        seed, ("in the %s phase at copy row %d, feedback %d/%d" % (st["phase"], st["ptr"], st["fb_ptr"],
                                                                   st["fb_total"]))
        if st else "outside the sparing", churn.writes, churn.failed))
    assert u.table("groups")[0]["members"] == [0, 1, 4, 3]
    assert u.drives[2].counters["writes"] == w0
    assert churn.verify() == []


# ---- parity storage unit (seed 000) ------------------------------------------------------------

def parity_rig(make_rig):
    from test_parity_unit import rig_desc as parity_desc

    rig = make_rig(parity_desc())
    return rig, [rig.unit("su%d" % i) for i in (1, 2, 3)], rig.unit("su4")


def parity_fill(rig, dus):
    """Every block of every data unit written by its verifying host."""
    for i, u in enumerate(dus):
        h = rig.host("h%d" % (i + 1))
        for v in u.table("volumes"):
            for lba in range(0, v["blocks"], 8):
                h.write(v["id"], lba, min(8, v["blocks"] - lba))


def saved_rows(pu):
    return saved(pu, "parity")["t740"]["rows"]


def no_doubt(dus):
    return all(not calm(u.table, "parity_unit")["doubt"] for u in dus)


@pytest.mark.parametrize("form,resume_at", [("13B", "position"), ("13A", "zero")])
def test_parity_build_killed_part_way_resumes_at_its_740_position(make_rig, form, resume_at):
    rig, dus, pu = parity_rig(make_rig)
    parity_fill(rig, dus)
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3], form=form, paused=True)
    pu.job("pbuild", "step", n=10)
    pu.wait_for(lambda u: u.job("pbuild")["pointer"] == 10, what="10 blocks built")
    _wait(lambda: max(r["pos"] for r in saved_rows(pu)) == 10, "position 10 saved")
    pu.job("pbuild", "step", n=15)     # blocks 10-24: done, but maybe not saved at the kill
    pu.wait_for(lambda u: u.job("pbuild")["pointer"] == 25, what="25 blocks built")
    hp.write_area(dus[0], 3, random.Random(7).randbytes(BS))       # a delta (block 3 already sent)
    hp.write_area(dus[2], 60, random.Random(8).randbytes(2 * BS))  # no delta (not sent yet, I8)
    sm = kill_and_boot(pu)
    pos = max(r["pos"] for r in sm["parity"]["t740"]["rows"])
    assert 10 <= pos <= 25
    j = pu.job("pbuild")
    want = pos if resume_at == "position" else 0
    assert (j["pointer"], j["state"]) == (want, "paused")
    assert any("build resumed after a reset at block %d" % want in w for w in pu.table("warnings"))
    pu.job("pbuild", "resume")
    assert pu.wait_job("pbuild")["state"] == "done"
    assert [x["recalc"] for x in pu.table("parity_740")["rows"]] == ["OFF"] * 3
    assert hp.bad_blocks(pu, dus) == []
    hp.write_area(dus[1], 5, random.Random(9).randbytes(3 * BS))   # deltas flow after the build
    assert hp.bad_blocks(pu, dus) == []


def test_parity_add_killed_part_way_resumes_from_the_13c_completed_blocks(make_rig):
    rig, dus, pu = parity_rig(make_rig)
    parity_fill(rig, dus)
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2])
    pu.wait_job("pbuild")
    pu.mgmt("parity_change", add=3, method="sequential", form="13C", paused=True)
    pu.job("padd3", "step", n=30)
    pu.wait_for(lambda u: u.job("padd3")["pointer"] == 30, what="30 blocks added")
    _wait(lambda: [r for r in saved_rows(pu) if r["unit"] == 3][0]["pos"] == 30, "30 blocks saved")
    hp.write_area(dus[2], 10, random.Random(3).randbytes(BS))      # delta: block 10 included
    hp.write_area(dus[0], 40, random.Random(4).randbytes(BS))      # the other members: deltas
    pu.job("padd3", "step", n=10)      # blocks 30-39: added, maybe not saved at the kill
    pu.wait_for(lambda u: u.job("padd3")["pointer"] == 40, what="40 blocks added")
    sm = kill_and_boot(pu)
    pos = [r for r in sm["parity"]["t740"]["rows"] if r["unit"] == 3][0]["pos"]
    assert 30 <= pos <= 40
    j = pu.job("padd3")
    assert (j["pointer"], j["state"]) == (pos, "paused")
    row = [r for r in pu.table("parity_740C")["rows"] if r["unit"] == 3][0]
    assert row["recalc"] == "ON" and row["completed"] == [[0, pos - 1]]
    assert hp.bad_blocks(pu, dus, only=range(pos)) == []
    pu.job("padd3", "resume")
    assert pu.wait_job("padd3")["state"] == "done"
    assert hp.bad_blocks(pu, dus) == []
    assert pu.table("parity_710")["data_units"] == [1, 2, 3]


def test_parity_restoration_and_delete_killed_part_way_go_on_from_their_pointers(make_rig):
    rig, dus, pu = parity_rig(make_rig)
    s1, s2, s3 = dus
    parity_fill(rig, dus)
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3], form="13B")
    pu.wait_job("pbuild")
    want = hp.area(s1)
    hp.lose_data(s1)
    s1.mgmt("parity_restore", method=2, paused=True)
    pu.job("prestore1", "step", n=25)
    pu.wait_for(lambda u: u.job("prestore1")["pointer"] == 25, what="25 blocks restored")
    _wait(lambda: saved(pu, "parity")["restore"].get("pos") == 25, "restore pointer saved")
    kill_and_boot(pu)
    j = pu.job("prestore1")
    assert (j["pointer"], j["state"]) == (25, "paused")
    assert s1.table("parity_unit")["restoring"] is not None        # su1 still waits for its data
    pu.job("prestore1", "resume")
    pu.wait_job("prestore1")
    s1.wait_for(lambda u: u.table("parity_unit")["restoring"] is None, what="restore done")
    assert hp.area(s1) == want
    last = pu.table("parity_unit")["last_restore"]
    assert last["sent"] == 80 and last["asked"] == {"2": 80, "3": 80}   # counted once per block
    pu.mgmt("parity_change", delete=2, paused=True)                # Fig 32, then a reset
    pu.job("pdel2", "step", n=20)
    pu.wait_for(lambda u: u.job("pdel2")["pointer"] == 20, what="20 blocks deleted")
    kill_and_boot(pu)                  # at once: the 740 position as last saved
    pos = [r for r in saved_rows(pu) if r["unit"] == 2][0]["pos"]
    j = pu.job("pdel2")
    assert (j["pointer"], j["state"]) == (pos, "paused") and pos <= 20
    hp.write_area(s2, 50, random.Random(5).randbytes(BS))          # not sent yet: still a delta
    pu.job("pdel2", "resume")
    pu.wait_job("pdel2")
    assert pu.table("parity_710")["data_units"] == [1, 3]
    assert hp.bad_blocks(pu, [s1, s3]) == []


def test_parity_build_killed_at_a_random_moment_under_host_writes_keeps_data_and_parity_exact(make_rig):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    rig, dus, pu = parity_rig(make_rig)
    parity_fill(rig, dus)
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3], form="13C", paused=True)
    churns = [Churn(rig.host("h%d" % (i + 1)), u.table("volumes"), seed + i, max_count=2)
              for i, u in enumerate(dus)]
    for c in churns:
        c.start()
    pu.job("pbuild", "resume")
    time.sleep(rng.uniform(0.2, 0.9))
    sm = kill_and_boot(pu)
    st = sm["parity"]
    at = max(r["pos"] for r in st["t740"]["rows"]) if st["busy"] else None
    if at is not None:            # killed during the build: it went on and finished
        assert wait_job(pu, "pbuild")["state"] == "done"
    assert [x["recalc"] for x in calm(pu.table, "parity_740")["rows"]] == ["OFF"] * 3
    time.sleep(0.3)
    for c in churns:
        c.finish()
    _wait(lambda: no_doubt(dus), "blocks in doubt recomputed", timeout=60)
    print("seed %d: killed %s; %d writes acknowledged, %d in flight; %d blocks recomputed" % (
        seed, "at build position %d" % at if at is not None else "after the build",
        sum(c.writes for c in churns), sum(c.failed for c in churns),
        calm(pu.table, "parity_unit")["counters"]["recomputed"]))
    for c in churns:
        assert c.verify() == []
    assert hp.bad_blocks(pu, dus) == []


@pytest.mark.parametrize("point", ["before_delta", "after_delta", "after_cache"])
def test_parity_data_unit_killed_between_a_delta_and_its_data_write_leaves_parity_consistent(make_rig, point):
    """A DU killed with a host write part-way: its pending-delta record (saved before the
    delta left) has the block recomputed at the next boot, whatever point it was at."""
    rig, dus, pu = parity_rig(make_rig)
    s1 = dus[0]
    parity_fill(rig, dus)
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    pu.wait_job("pbuild")
    old = hp.area(s1)[10 * BS:12 * BS]
    new = random.Random(11).randbytes(2 * BS)
    applied = pu.table("parity_unit")["counters"]["deltas_applied"]
    s1.mgmt("parity_hold", at=point)
    errors = []

    def write():
        try:
            hp.write_area(s1, 10, new)          # blocks 10 and 11: two deltas
        except Exception as e:
            errors.append(e)
    t = threading.Thread(target=write, daemon=True)
    t.start()
    s1.wait_for(lambda u: u.table("parity_unit")["held"] == "holding " + point, what="write held")
    assert pu.table("parity_unit")["counters"]["deltas_applied"] - applied == {
        "before_delta": 0, "after_delta": 1, "after_cache": 2}[point]
    sm = kill_and_boot(s1)
    t.join(30)
    assert len(errors) == 1                     # never acknowledged
    assert sm["parity"]["pending"] == [10, 11]  # the records were on the board before a delta left
    s1.wait_for(lambda u: not (st := u.table("parity_unit"))["doubt"] and not st["pending"],
                what="pending deltas reconciled")
    assert s1.table("parity_unit")["counters"]["pending_reconciled"] == 2
    assert any("write deltas were pending at the reset" in w for w in s1.table("warnings"))
    got = hp.area(s1)[10 * BS:12 * BS]
    assert all(got[i * BS:(i + 1) * BS] in (old[i * BS:(i + 1) * BS], new[i * BS:(i + 1) * BS]) for i in (0, 1))
    assert hp.bad_blocks(pu, dus) == []         # P[n] = the XOR of the units' blocks, every n
    hp.write_area(s1, 10, new)                  # the unit writes on, with deltas
    assert hp.area(s1)[10 * BS:12 * BS] == new and hp.bad_blocks(pu, dus) == []


# ---- volume copy (seed 003 E7) and tape backup (E11) -----------------------------------------

VC_BS = 512


def vc_desc(blocks=192):
    """Two volumes of `blocks` 512-byte blocks on a RAID5 group, 4-block tracks."""
    unit = {"name": "u0", "drives": 5, "drive_blocks": blocks, "backing": "memory",
            "group": [{"id": 0, "level": 5, "members": [0, 1, 2, 3], "chunk": 2, "spares": [4],
                       "auto_rebuild": False}],
            "volume": [{"id": 0, "group": 0, "blocks": blocks}, {"id": 1, "group": 0, "start": blocks,
                                                                  "blocks": blocks}],
            "features": ["volcopy"], "volcopy": {"track_blocks": 4, "slots": 2}}
    return rig_desc(unit, block_size=VC_BS)


def vc_job(u):
    return (saved(u, "volcopy")["pairs"][0] or {}).get("job") or {}


def test_volume_copy_generation_and_division_killed_part_way_resume_from_their_pointers(make_rig):
    rig = make_rig(vc_desc())
    u, h = rig.unit(), rig.host()
    fill(u, h, [{"id": 0, "blocks": 192}])
    vc.pair_create(u, 0, 1, paused=True)
    vc.step(u, "vcgen0", 10)
    _wait(lambda: vc_job(u).get("copied") == 10, "10 track copies saved")
    sm = kill_and_boot(u)
    rec = sm["volcopy"]["pairs"][0]["job"]
    assert (rec["pointer"], rec["copied"]) == (10, 10)
    j = u.job("vcgen0")
    assert (j["track"], j["copied"], j["state"]) == (10, 10, "paused")        # not from track 0
    u.job("vcgen0", "resume")
    assert u.wait_job("vcgen0")["copied"] == 48
    assert vc.info(u)["copied"] == 48 - 10                  # since the boot: tracks 10-47 only
    assert u.read(1, 0, 192) == u.read(0, 0, 192)
    for lba in (0, 20, 100, 150):
        h.write(0, lba, 4)
    at_split = u.read(0, 0, 192)
    vc.pair_split(u, 0, 1, paused=True)
    vc.step(u, "vcdiv0", 2)
    h.write(0, 150, 2)                 # copy-on-write of track 37 first, then acknowledged
    h.write(0, 60, 1)                  # a track not to copy: only marked
    sm = kill_and_boot(u)              # at once: the copy pointer as last saved
    rec = sm["volcopy"]["pairs"][0]["job"]
    j = u.job("vcdiv0")
    assert (j["track"], j["copied"], j["state"]) == (rec["pointer"], rec["copied"], "paused")
    assert sm["volcopy"]["pairs"][0]["state"] == vc.UNDER_DIV
    u.job("vcdiv0", "resume")
    assert u.wait_job("vcdiv0")["state"] == "done"
    assert u.read(1, 0, 192) == at_split                                      # the split image
    assert h.verify_all(0, 192) == 0                                          # the original


def test_volume_copy_pause_and_resume_are_saved_before_they_are_acknowledged(make_rig):
    rig = make_rig(vc_desc(blocks=768))
    u, h = rig.unit(), rig.host()
    fill(u, h, [{"id": 0, "blocks": 768}])
    vc.pair_create(u, 0, 1, paused=True)
    vc.step(u, "vcgen0", 2)
    u.job("vcgen0", "resume")
    rec = vc_job(u)                    # read at once: no periodic save in between
    assert rec == {} and saved(u, "volcopy")["pairs"][0]["state"] == vc.GEN_DONE or rec["paused"] is False
    u.job("vcgen0", "pause")
    rec = vc_job(u)
    assert rec == {} and saved(u, "volcopy")["pairs"][0]["state"] == vc.GEN_DONE or rec["paused"] is True
    if rec:                            # a reset now keeps it paused where it was
        kill_and_boot(u)
        assert u.job("vcgen0")["state"] == "paused"


def resumed_or_done(u, sm, name, running, done):
    """After a kill at a random moment: pair 0's copy either was running (its job record
    and its state are in the saved SM together; the job goes on and finishes) or had
    finished (the state says so; a finished job is not kept across a boot).  Returns
    the saved job record, or None."""
    pair = sm["volcopy"]["pairs"][0]
    if pair["job"]:
        assert (pair["state"], pair["job"]["name"]) == (running, name)
        assert u.wait_job(name, timeout=60)["state"] == "done"
    else:
        assert pair["state"] == done
    assert vc.pair(u, 0)["state"] == done
    return pair["job"]


def test_volume_copy_division_killed_at_a_random_moment_under_host_writes_keeps_the_split_image(make_rig):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    rig = make_rig(vc_desc(blocks=768))
    u, h = rig.unit(), rig.host()
    vol = {"id": 0, "blocks": 768}
    fill(u, h, [vol])
    vc.pair_create(u, 0, 1)
    churn = Churn(h, [vol], seed).start()
    time.sleep(rng.uniform(0.0, 0.3))
    sm = kill_and_boot(u, churn)         # during the generation copy (or after it)
    gen = resumed_or_done(u, sm, "vcgen0", vc.UNDER_GEN, vc.GEN_DONE)
    churn.pause()
    at_split = u.read(0, 0, 768)
    vc.pair_split(u, 0, 1)
    churn.resume()
    time.sleep(rng.uniform(0.0, 0.3))
    sm = kill_and_boot(u, churn)         # during the division (or after it)
    div = resumed_or_done(u, sm, "vcdiv0", vc.UNDER_DIV, vc.DIV_DONE)
    time.sleep(0.2)
    churn.finish()
    print("seed %d: generation killed %s, division killed %s; %d writes acknowledged, %d in flight" % (
        seed, "at track %d" % gen["pointer"] if gen else "after it", "at track %d" % div["pointer"] if div else
        "after it", churn.writes, churn.failed))
    assert u.read(1, 0, 768) == at_split
    assert churn.verify() == []


class MarkedTape(TapeDrive):
    """A tape that runs `on_third()` once its 3rd record is written."""

    def __init__(self, path, on_third):
        super().__init__(path)
        self.on_third = on_third

    def write(self, rec):
        super().write(rec)
        if self.written == 3:
            self.on_third()


def test_tape_backup_cut_short_by_a_reset_is_taken_up_again_after_its_last_record(make_rig, tmp_path):
    rig = make_rig(vc_desc())
    u, h = rig.unit(), rig.host()
    fill(u, h, [{"id": 0, "blocks": 192}])
    vc.pair_create(u, 0, 1)
    u.wait_job("vcgen0")
    vc.pair_split(u, 0, 1)
    u.wait_job("vcdiv0")
    image = u.read(1, 0, 192)
    u.flush(1)
    u.restart()                        # a cold cache: the backup's reads go to the drives
    third = threading.Event()
    # the board dies at the first drive read of the 4th chunk, while the backup host waits for it
    dead = cut_power_at(u, lambda d, kind, lba: third.is_set() and kind == wire.K_DREAD)
    tape = MarkedTape(tmp_path / "tape", third.set)
    bh = BackupHost(u, tape)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("cuts", bh.backup_split_copy(0, 1, chunk=16)))
    t.start()
    assert dead.wait(60)
    kill_and_boot(u)
    t.join(60)
    assert out.get("cuts") == 1, out
    recs = tape.records()
    assert [(r.first, r.blocks) for r in recs] == [(i * 16, 16) for i in range(12)]   # none twice
    assert restore(recs, 1, 192, VC_BS) == image
    assert vc.pair(u, 0)["state"] == vc.DIV_DONE
