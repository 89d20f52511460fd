"""Model-based testing: random I/O, faults, resets and management commands against a
rig, every read checked against a golden model (host.golden.Golden).  A run is a list
of steps (plain dicts), so a failing run is saved as JSON and replayed step by step:

    python -m host.model replay reports/model-failures/XXXX.json [--board emulator]

The pieces, for model tests of features (tests/test_model_<name>.py):
  Golden (host.golden)   what each block may hold, from the host's view of when each
                         request went out and came back; knows nothing of rigs
  run_batch(u, g, ...)   issue ops concurrently on several ports of a unit, iodepth
                         each, checking every read against g; may kill the board or
                         fail a member at a given completion
  ModelRun(board, desc)  a rig plus its Golden; apply(step) runs one step (write, read,
                         batch, fail, rebuild, restart, flush, defect, bad)
  random_steps(rng, ...) a seeded list of steps (concurrent batches when iodepth > 1)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from firmware import wire
from firmware.raid import locate
from host.golden import Golden
from host.link import StatusError
from host.rig import Rig

__all__ = ["Golden", "ModelRun", "run_batch", "random_steps", "model_rig_desc", "replay"]

FAILURES = Path("reports") / "model-failures"


def model_rig_desc(block_size: int = 512, hosts: int = 2) -> dict:
    return {"rig": {"name": "model", "block_size": block_size},
            "unit": [{"name": "u0", "drives": 5, "drive_blocks": 48, "backing": "memory",
                      "group": [{"id": 0, "level": 5, "members": [0, 1, 2, 3], "chunk": 2, "spares": [4],
                                 "auto_rebuild": False}],
                      "volume": [{"id": 0, "group": 0, "blocks": 120}]}],
            "host": [{"name": f"h{i}", "unit": "u0", "port": i} for i in range(hosts)]}


def run_batch(u, g: Golden, ops, iodepth: int = 8, vol: int = 0, hold=None, kill_after=None,
              fail_after=None, on_fail=None, on_read_error=None, on_kill=None, kill=None) -> list[str]:
    """Issue ops [(port, "w"|"r", lba, count)] in order on unit u, up to `iodepth`
    outstanding on each port (and no more than the board's workers but one, all ports
    together; overlapping ones too: the model allows either order),
    every answer checked against g; return the descriptions of wrong blocks.

    hold: a group member whose drive holds its answers until the first time the
    driver must wait (so the first requests are all in flight at once); fail_after=k:
    on_fail() is called after k answers (e.g. a member fails mid-batch); kill_after=k:
    the board is killed after k answers, every request still in flight is abandoned
    (writes may or may not have landed), on_kill() is called and the board booted
    again (kill: a fn that does the kill instead, and no reboot follows, e.g. one
    controller of a dual unit, whose sibling takes over).  on_read_error(op,
    StatusError) -> True excuses a refused read."""
    if hold is not None and kill_after is not None:
        raise ValueError("hold and kill_after together: a held drive request could land after the reset")
    step = u._io_chunk()      # an op longer than one frame takes goes as several requests
    todo = [(p, k, lba + i, min(step, n - i)) for p, k, lba, n in ops for i in range(0, n, step)]
    inflight = []            # [port, Op, handle]
    count = {}
    answers = 0
    bad: list[str] = []
    held = None
    if hold is not None:
        held = u.table("groups")[0]["members"][hold]
        u.inject(held, "hold")

    def issue(port, op):
        arg = op.data if op.kind == "w" else op.count
        inflight.append([port, op, u.start_io(op.kind, vol, op.lba, arg, port)])
        count[port] = count.get(port, 0) + 1

    # all ports together keep at most the board's request workers busy, one left for
    # management (a fault injected mid-batch asks the board for its tables)
    cap = max(1, u.hello.get("workers", 2 * iodepth + 1) - 1)
    try:
        while todo or inflight:
            while todo and count.get(todo[0][0], 0) < iodepth and len(inflight) < cap:
                port, kind, lba, n = todo.pop(0)
                issue(port, g.write_issued(lba, n) if kind == "w" else g.read_issued(lba, n))
            if held is not None:          # about to wait: let the held drive go on
                u.inject(held, "release")
                held = None
            if kill_after is not None and answers >= kill_after:
                (kill or u.kill)()
                for _, op, _ in inflight:
                    (g.write_unknown if op.kind == "w" else g.read_dropped)(op)
                g.reset()
                if on_kill:
                    on_kill()
                if kill is None:
                    u.start(configure=False)
                return bad
            if fail_after is not None and answers >= fail_after:
                fail_after = None
                on_fail()
            w = u._up().wait_any([f[2] for f in inflight])
            f = next(f for f in inflight if f[2] is w)
            inflight.remove(f)
            port, op, _ = f
            count[port] -= 1
            try:
                data = u.finish_io(w)
            except StatusError as e:
                if e.status == wire.E_BUSY:      # every worker taken: asked again
                    inflight.append([port, op, u.start_io(op.kind, vol, op.lba,
                                                          op.data if op.kind == "w" else op.count, port)])
                    count[port] += 1
                    continue
                if op.kind == "r" and on_read_error and on_read_error(op, e):
                    g.read_dropped(op)
                    answers += 1
                    continue
                raise
            answers += 1
            if op.kind == "w":
                g.write_acked(op)
            else:
                bad += g.read_done(op, data)
    finally:
        if held is not None:
            u.inject(held, "release")
    return bad


def random_steps(rng, n: int, blocks: int, iodepth: int = 1, ports: int = 2, members: int = 4,
                 rows: int = 48) -> list[dict]:
    """n seeded random steps.  With iodepth > 1, I/O comes in concurrent batches on
    `ports` ports, some with a held member, a member failing or the board killed
    mid-batch.  Faults follow the model's limits (one failed member until a rebuild,
    one spare)."""
    failed, spares, out = False, 1, []

    def io(kind, lba):
        k = min(rng.randint(1, 6 if kind == "write" else 8), blocks - lba)
        return {"op": kind, "lba": lba, "count": k}

    for _ in range(n):
        c = rng.random()
        if c < 0.8 and iodepth > 1 and rng.random() < 0.6:
            ops = []
            hot = rng.randrange(blocks - 8)           # a few blocks every request is near
            for _ in range(rng.randint(iodepth, 3 * iodepth)):
                lba = hot + rng.randrange(8) if rng.random() < 0.5 else rng.randrange(blocks)
                s = io("write" if rng.random() < 0.5 else "read", lba)
                ops.append([rng.randrange(ports), s["op"][0], s["lba"], s["count"]])
            st = {"op": "batch", "iodepth": iodepth, "ops": ops}
            r = rng.random()
            if r < 0.25:
                st["hold"] = rng.randrange(members)
            elif r < 0.4:
                st["kill_after"] = rng.randrange(len(ops))
            elif r < 0.5 and not failed:
                st["fail_after"], st["fail_member"], failed = rng.randrange(len(ops)), rng.randrange(members), True
        elif c < 0.4:
            st = io("write", rng.randrange(blocks))
        elif c < 0.8:
            st = io("read", rng.randrange(blocks))
        elif c < 0.83 and not failed:
            st, failed = {"op": "fail", "member": rng.randrange(members)}, True
        elif c < 0.86 and failed and spares:
            st, failed, spares = {"op": "rebuild"}, False, spares - 1
        elif c < 0.9:
            st = {"op": "restart"}
        elif c < 0.94:
            st = {"op": "flush"}
        elif c < 0.97 and not failed:
            st = {"op": "defect", "member": rng.randrange(members), "row": rng.randrange(rows)}
        else:
            st = {"op": "bad"}
        out.append(st)
    return out


class ModelRun:
    """A rig plus its golden model; apply() executes one step and checks it."""

    def __init__(self, board: str = "inprocess", desc: dict | None = None, state_dir=None):
        self.rig = Rig(desc or model_rig_desc(), board=board, state_dir=state_dir).start()
        self.u = self.rig.unit()
        self.bs = self.u.block_size
        self.blocks = self.u.table("volumes")[0]["blocks"]
        self.golden = Golden(self.bs)
        self.steps: list[dict] = []
        self.checked = 0
        self.failed_members: list[int] = []
        self.defect_rows: set[int] = set()   # one fault per RAID5 row at a time
        self.defects: set[tuple[int, int]] = set()   # (member, row) of the defects injected
        # A reset may catch a row mid-write while another of its blocks has a defect: a
        # double fault, and the unit rightly reports that block lost.  (member, row) of
        # the defects present at a reset; rows the unit has shown lost for one of them.
        self.doubt: set[tuple[int, int]] = set()
        self.lost_rows: set[int] = set()
        self.restarted = False   # a restart since the last flush: a row may still be mid-write

    def close(self):
        self.rig.close()

    def _lost_excused(self, lba: int) -> bool:
        """May a read of lba answer DATA_LOST?  Only in a row the unit has marked lost
        because of a block that had a defect at a reset (see doubt)."""
        g = self.u.table("groups")[0]
        row = locate(g, lba)[0]
        lost = [tuple(x) for x in g.get("lost") or [] if x[1] == row]
        if any(x in self.doubt for x in lost):
            self.lost_rows.add(row)
        return bool(lost) and row in self.lost_rows

    def _read(self, lba: int, n: int) -> bytes | None:
        """Read n blocks; a block rightly lost (see doubt) comes back as None."""
        try:
            return self.u.read(0, lba, n)
        except StatusError as e:
            if e.status != wire.E_DATA_LOST or not any(self._lost_excused(lba + i) for i in range(n)):
                raise
        out = []
        for i in range(n):          # block by block: the others are still checked
            try:
                out.append(self.u.read(0, lba + i, 1))
            except StatusError as e:
                if e.status != wire.E_DATA_LOST or not self._lost_excused(lba + i):
                    raise
                out.append(None)
        return out

    def expected(self, lba: int) -> bytes:
        """The content of lba as the model knows it (no write in flight; after a reset
        that caught writes in flight, the newest it may still be)."""
        return self.golden.content(lba, max(self.golden.possible(lba)))

    def _check(self, op, data):
        bad = self.golden.read_done(op, data)
        self.checked = self.golden.checked
        if bad:
            raise AssertionError(f"step {len(self.steps)}: " + "; ".join(bad))

    def _fail(self, member: int):
        # one fault per row at a time: latent defects are cleared first (two faults
        # in one RAID5 row lose data, and the unit rightly says so)
        u = self.u
        for drv in u.drives:
            drv.faults.defects.clear()
        self.defect_rows.clear()
        self.defects.clear()
        if self.restarted:    # the member's drive dies while a row may still be mid-write
            self.doubt |= {(member, r) for r in range(u.drives[0].blocks)}
        d = u.table("groups")[0]["members"][member]
        u.inject(d, "fail")
        u.fail_drive(d, "model")

    def _restarted(self):
        self.golden.reset()
        self.doubt |= self.defects
        self.restarted = True

    def _read_error(self, op, e: StatusError) -> bool:
        """A batch read refused: rightly (a lost block, see doubt) or not."""
        return e.status == wire.E_DATA_LOST and any(self._lost_excused(op.lba + i) for i in range(op.count))

    def apply(self, step: dict):
        self.steps.append(step)
        op = step["op"]
        u = self.u
        if op == "write":
            w = self.golden.write_issued(step["lba"], step["count"])
            u.write(0, w.lba, w.data)
            self.golden.write_acked(w)
        elif op == "read":
            r = self.golden.read_issued(step["lba"], step["count"])
            self._check(r, self._read(r.lba, r.count))
        elif op == "batch":
            def at_fail():
                self._fail(step["fail_member"])
            bad = run_batch(u, self.golden, step["ops"], step.get("iodepth", 8), hold=step.get("hold"),
                            kill_after=step.get("kill_after"), fail_after=step.get("fail_after"),
                            on_fail=at_fail, on_read_error=self._read_error, on_kill=self._restarted)
            self.checked = self.golden.checked
            if bad:
                raise AssertionError(f"step {len(self.steps)}: " + "; ".join(bad))
        elif op == "fail":
            self._fail(step["member"])
        elif op == "rebuild":
            u.rebuild(0)
            u.wait_job("rebuild0", timeout=60)
        elif op == "restart":
            self._restarted()
            u.restart()
        elif op == "flush":
            try:
                u.flush()
                self.restarted = False
            except StatusError as e:   # a write into a row with a lost block stays in the cache
                if e.status != wire.E_DATA_LOST or not any(r in self.lost_rows for _, r in self.doubt):
                    raise
        elif op == "defect":
            # a second latent defect in a row already holding one would be a double
            # fault (data rightly lost): the model never injects it
            if step["row"] not in self.defect_rows:
                self.defect_rows.add(step["row"])
                self.defects.add((step["member"], step["row"]))
                g = u.table("groups")[0]
                u.inject(g["members"][step["member"]], "defect", step["row"], 1)
        elif op == "bad":
            # malformed requests: refused, nothing changes
            for kind, payload in ((wire.K_READ, b"\x00"), (wire.K_WRITE, b"\x00" * 8),
                                  (wire.K_READ, bytes([0, 0]) + (self.blocks).to_bytes(4, "little") + b"\x01\x00")):
                st, _ = u.link.request(wire.CH_HOST, kind, payload)
                if st == wire.OK:
                    raise AssertionError(f"step {len(self.steps)}: malformed request accepted")
            try:
                u.mgmt("fail_drive", drive=99)
                raise AssertionError("impossible fail_drive accepted")
            except StatusError:
                pass
        else:
            raise ValueError(f"unknown step {op!r}")

    def group_state(self) -> dict:
        return self.u.table("groups")[0]

    def save_failure(self, error: str) -> Path:
        FAILURES.mkdir(parents=True, exist_ok=True)
        p = FAILURES / f"model-{time.strftime('%Y%m%d-%H%M%S')}-{id(self) & 0xFFFF:04x}.json"
        p.write_text(json.dumps({"error": error, "steps": self.steps}, indent=1))
        return p


def replay(path: str | Path, board: str = "inprocess") -> int:
    doc = json.loads(Path(path).read_text())
    run = ModelRun(board)
    try:
        for i, step in enumerate(doc["steps"]):
            try:
                run.apply(step)
            except AssertionError as e:
                print(f"step {i}: {step}: {e}")
                return 1
        print(f"replayed {len(doc['steps'])} steps, {run.checked} blocks checked: no difference")
        return 0
    finally:
        run.close()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "replay":
        b = sys.argv[sys.argv.index("--board") + 1] if "--board" in sys.argv else "inprocess"
        sys.exit(replay(sys.argv[2], b))
    print(__doc__)
