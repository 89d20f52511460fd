"""Seed 004's port choice over the four ports of a dual subsystem (2 controllers x 2
ports), with concrete loads.  The real Port objects count real commands into 450/460 and
610/620 (built by the feature's own state.init); the ranking is the feature's choose
module, the same code a board runs.  (On the emulator: tests/test_online_backup.py for one
controller's two ports, tests/test_online_backup_dual.py for the four ports of two boards.)"""
import pytest

from firmware.features.online_backup import choose, fc, state
from firmware.features.online_backup.ports import Port
from firmware.sm import SharedMemory


class Subsystem:
    """The management information of one subsystem and its four ports."""

    def __init__(self, tmp_path, **settings):
        cfg = {"online_backup": dict({"ports": [{"alpa": 1}, {"alpa": 2}]}, **settings)}
        self.st = state.settings(cfg)
        self.sm = state.init(SharedMemory(str(tmp_path / "sm.json")), self.st)
        self.ports = [Port(self, i, n, 1 + i, 0x6E + i % 2) for i, n in enumerate(("A0", "A1", "B0", "B1"))]
        self.remote = []     # all four are Port objects here (on a board B's are remote.RemotePort)

    def role(self, name):
        return self.sm["t640"].get(name, "both")

    def ctl_load(self, port):
        return self.sm["t610"] if port.name[0] == "A" else self.sm["t620"]

    def port(self, name):
        return next(p for p in self.ports if p.name == name)

    def run(self, name, cmds):
        for op, lba, n in cmds:
            self.port(name).count(op, 0, lba, n)


SEQ = [(fc.READ, 0, 8), (fc.READ, 8, 8), (fc.READ, 16, 8)]          # each continues the last
RND = [(fc.READ, 100, 8), (fc.READ, 0, 8), (fc.WRITE, 50, 8)]       # none does


@pytest.mark.parametrize("random_port", ["A0", "A1", "B0", "B1"])
def test_three_sequential_ports_and_one_random_the_random_one_whatever_its_load(tmp_path, random_port):
    s = Subsystem(tmp_path)
    for p in s.ports:
        s.run(p.name, RND if p.name == random_port else SEQ)
    loads = {p.name: (p.load["access"], p.load["amount"]) for p in s.ports}
    assert loads[random_port] == ("random", 8 + 8 + 32)                # the write counts four times
    assert all(v == ("sequential", 24) for k, v in loads.items() if k != random_port)
    assert choose.rank(s)[0].name == random_port                      # although its 452 is the largest


def test_ties_and_thresholds_controller_totals_and_roles(tmp_path):
    s = Subsystem(tmp_path, transfer_threshold=100)
    s.run("A0", [(fc.READ, 0, 2)])
    s.run("A1", [(fc.READ, 10, 2)])
    s.run("B0", [(fc.READ, 20, 1), (fc.READ, 40, 1)])
    s.run("B1", [(fc.READ, 30, 2)])
    assert s.sm["t610"] == {"io": 2, "amount": 4} and s.sm["t620"] == {"io": 3, "amount": 4}
    # both totals small: the larger I/O count is heavier (B)
    assert choose.heavier(s) == "B"
    # all random; smallest 452 wins; among equal (A0, A1, B1: 2), 451 then the lighter controller
    assert [p.name for p in choose.rank(s)] == ["A0", "A1", "B1", "B0"]
    s.run("A0", [(fc.WRITE, 60, 30)])                                  # 120 more: A's 612 over the threshold
    assert choose.heavier(s) == "A"
    assert [p.name for p in choose.rank(s)] == ["B1", "A1", "B0", "A0"]     # ties: the lighter controller first
    s.sm["t640"].update({"A1": "online", "B1": "online"})
    assert [p.name for p in choose.rank(s)] == ["B0", "A0"]
    s.port("B0").up = False
    assert [p.name for p in choose.rank(s)] == ["A0"]


def test_lighter_and_spread(tmp_path):
    s = Subsystem(tmp_path, max_spread=3, spread_threshold=10)
    s.run("A0", SEQ)
    s.run("A1", [(fc.READ, 0, 4)])
    s.run("B0", [(fc.READ, 7, 3)])
    s.run("B1", [(fc.READ, 3, 20)])
    r = choose.rank(s)
    assert [p.name for p in r] == ["B0", "A1", "B1", "A0"]
    assert choose.weight(s.port("A1")) < choose.weight(s.port("A0"))  # random beats sequential
    assert [p.name for p in choose.spread(s, r)] == ["B0", "A1"]      # B1's 20 is not light
    s.ports[0].clear()
    s.run("A0", [(fc.READ, 1000, 1)])                                 # after a clear: compared with the
    assert s.port("A0").load["access"] == "random"                    # previous command, not sequential
    assert [p.name for p in choose.spread(s, choose.rank(s))] == ["A0", "B0", "A1"]
