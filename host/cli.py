"""storlab: the command line.

  storlab demo [--board emulator|cpython|inprocess] [--rig FILE] [--scenario rebuild|sparing|all]
  storlab tables --rig FILE [--board B] [--table NAME]
  storlab boards
"""
from __future__ import annotations

import argparse
import json
import sys

from host.boards import BOARDS_DIR, load_board


def main(argv=None):
    ap = argparse.ArgumentParser(prog="storlab", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="RAID5 unit: workload, drive failure, rebuild, verify")
    d.add_argument("--board", default="emulator")
    d.add_argument("--rig", default=None)
    d.add_argument("--ops", type=int, default=300)
    d.add_argument("--scenario", default="rebuild", choices=["rebuild", "sparing", "all"],
                   help="rebuild: a drive dies and is rebuilt; sparing: a failing drive is copied "
                        "to the spare before it dies (seed 001); all: both")
    t = sub.add_parser("tables", help="start a rig and print its units' SM tables as JSON")
    t.add_argument("--rig", required=True)
    t.add_argument("--board", default=None)
    t.add_argument("--table", default=None)
    sub.add_parser("boards", help="list the board definitions")
    a = ap.parse_args(argv)

    if a.cmd == "demo":
        from host import demo

        kw = {"rig_path": a.rig} if a.rig else {}
        bad = 0
        if a.scenario in ("rebuild", "all"):
            bad += demo.run(board=a.board, ops=a.ops, **kw)["bad"]
        if a.scenario in ("sparing", "all"):
            from host import demo_sparing

            res = demo_sparing.run(board=a.board, **kw)
            bad += res["bad"] + res["faulty_writes"]
        return 0 if bad == 0 else 1
    if a.cmd == "tables":
        from host.rig import Rig

        with Rig.load(a.rig, board=a.board) as rig:
            out = {name: (u.table(a.table) if a.table else u.tables()) for name, u in rig.units.items()}
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    if a.cmd == "boards":
        for p in sorted(BOARDS_DIR.glob("*.toml")):
            b = load_board(str(p))
            print(f"{b['name']:14} {b['kind']:10} slots={b.get('cache_slots')} "
                  f"payload={b.get('max_payload')}  {b.get('description', '')}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
