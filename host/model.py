"""Model-based testing: random I/O, faults, resets and management commands against a
rig, every read checked against a golden model.  A run is a list of steps (plain
dicts), so a failing run is saved as JSON and replayed step by step:

    python -m host.model replay reports/model-failures/XXXX.json [--board emulator]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from firmware import wire
from firmware.raid import locate
from host.hostio import block_content
from host.link import StatusError
from host.rig import Rig

FAILURES = Path("reports") / "model-failures"


def model_rig_desc(block_size: int = 512) -> dict:
    return {"rig": {"name": "model", "block_size": block_size},
            "unit": [{"name": "u0", "drives": 5, "drive_blocks": 48, "backing": "memory",
                      "group": [{"id": 0, "level": 5, "members": [0, 1, 2, 3], "chunk": 2, "spares": [4],
                                 "auto_rebuild": False}],
                      "volume": [{"id": 0, "group": 0, "blocks": 120}]}],
            "host": [{"name": "h0", "unit": "u0"}]}


class ModelRun:
    """A rig plus its golden model; apply() executes one step and checks it."""

    def __init__(self, board: str = "inprocess", desc: dict | None = None, state_dir=None):
        self.rig = Rig(desc or model_rig_desc(), board=board, state_dir=state_dir).start()
        self.u = self.rig.unit()
        self.bs = self.u.block_size
        self.blocks = self.u.table("volumes")[0]["blocks"]
        self.gens: dict[int, int] = {}
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
        g = self.gens.get(lba, 0)
        return bytes(self.bs) if g == 0 else block_content(0, lba, g, self.bs)

    def apply(self, step: dict):
        self.steps.append(step)
        op = step["op"]
        u = self.u
        if op == "write":
            lba, n = step["lba"], step["count"]
            gens = [self.gens.get(lba + i, 0) + 1 for i in range(n)]
            u.write(0, lba, b"".join(block_content(0, lba + i, gens[i], self.bs) for i in range(n)))
            for i in range(n):
                self.gens[lba + i] = gens[i]
        elif op == "read":
            lba, n = step["lba"], step["count"]
            data = self._read(lba, n)
            for i in range(n):
                self.checked += 1
                got = data[i * self.bs:(i + 1) * self.bs] if isinstance(data, bytes) else data[i]
                if got is not None and got != self.expected(lba + i):
                    raise AssertionError(f"step {len(self.steps)}: block {lba + i} differs from the model "
                                         f"(expected generation {self.gens.get(lba + i, 0)})")
        elif op == "fail":
            # one fault per row at a time: latent defects are cleared first (two faults
            # in one RAID5 row lose data, and the unit rightly says so)
            for drv in u.drives:
                drv.faults.defects.clear()
            self.defect_rows.clear()
            self.defects.clear()
            if self.restarted:    # the member's drive dies while a row may still be mid-write
                self.doubt |= {(step["member"], r) for r in range(u.drives[0].blocks)}
            g = u.table("groups")[0]
            d = g["members"][step["member"]]
            u.inject(d, "fail")
            u.fail_drive(d, "model")
        elif op == "rebuild":
            u.rebuild(0)
            u.wait_job("rebuild0", timeout=60)
        elif op == "restart":
            self.doubt |= self.defects
            self.restarted = True
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
