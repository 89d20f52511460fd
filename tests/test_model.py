"""Model-based testing: hypothesis drives a rig with random I/O, drive faults, board
resets, rebuilds and malformed commands, and checks every read against a golden model.
A failing run is saved as a replayable list of steps (host/model.py)."""
import pytest
from conftest import have_micropython
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from host.model import ModelRun

BLOCKS = 120


class RigModel(RuleBasedStateMachine):
    board = "inprocess"

    def __init__(self):
        super().__init__()
        self.run = ModelRun(self.board)
        self.failed = False
        self.spares = 1      # tracked here, so the rules' preconditions never depend on timing

    def teardown(self):
        self.run.close()

    def _do(self, step):
        try:
            self.run.apply(step)
        except Exception as e:   # a wrong read, or an error status where none is due
            path = self.run.save_failure(repr(e))
            raise AssertionError(f"{e!r} (steps saved to {path})") from None

    @rule(lba=st.integers(0, BLOCKS - 1), count=st.integers(1, 6))
    def write(self, lba, count):
        self._do({"op": "write", "lba": lba, "count": min(count, BLOCKS - lba)})

    @rule(lba=st.integers(0, BLOCKS - 1), count=st.integers(1, 8))
    def read(self, lba, count):
        self._do({"op": "read", "lba": lba, "count": min(count, BLOCKS - lba)})

    @precondition(lambda self: not self.failed)
    @rule(member=st.integers(0, 3))
    def fail_a_member(self, member):
        self._do({"op": "fail", "member": member})
        self.failed = True

    @precondition(lambda self: self.failed and self.spares)
    @rule()
    def rebuild(self):
        self._do({"op": "rebuild"})
        self.failed = False
        self.spares -= 1

    @rule()
    def restart(self):
        self._do({"op": "restart"})

    @rule()
    def flush(self):
        self._do({"op": "flush"})

    @precondition(lambda self: not self.failed)
    @rule(member=st.integers(0, 3), row=st.integers(0, 47))
    def defect(self, member, row):
        self._do({"op": "defect", "member": member, "row": row})

    @rule()
    def malformed(self):
        self._do({"op": "bad"})

    @invariant()
    def group_never_lost(self):
        assert self.run.group_state()["state"] != "failed"


class EmulatorRigModel(RigModel):
    board = "emulator"


TestRigModelInProcess = RigModel.TestCase
TestRigModelInProcess.settings = settings(max_examples=30, stateful_step_count=50, deadline=None)

TestRigModelEmulator = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")(
    EmulatorRigModel.TestCase)
TestRigModelEmulator.settings = settings(max_examples=5, stateful_step_count=30, deadline=None)
