"""Remote serial: a board exported by ser2net as RFC 2217 on 127.0.0.1 and a rig
attached by URL, the way a board farm's exporter (or labgrid) hands boards out."""
import pytest
import serial.rfc2217
from conftest import have_micropython, rig_desc

from host.deploy import EmulatedBoard, Ser2net
from host.rig import Rig
from host.scenarios import raid5_life

pytestmark = [
    pytest.mark.filterwarnings("ignore:set.*is deprecated:DeprecationWarning"),   # pyserial 3.5 rfc2217
    pytest.mark.skipif(Ser2net.binary() is None,
                       reason="ser2net is not installed (Debian package ser2net; .ci/run installs it)"),
    pytest.mark.skipif(not have_micropython(), reason="the micropython binary is not installed"),
]


def test_rig_runs_a_verifying_workload_through_ser2net_rfc2217(tmp_path):
    with EmulatedBoard("emulator", tmp_path / "flash") as board:
        board.power_on(source=True)
        with Ser2net([board.port], tmp_path / "ser2net") as s2n:
            url = s2n.url()
            assert url.startswith("rfc2217://127.0.0.1:")
            # 512-byte blocks: pyserial's RFC 2217 client queues received bytes one by one
            with Rig(rig_desc(block_size=512), state_dir=tmp_path / "rig", board=f"emulator@{url}") as rig:
                u = rig.unit()
                assert isinstance(u.port.ser, serial.rfc2217.Serial) and u.port.ser.is_open
                assert u.hello["impl"] == "micropython" and u.hello["configured"] is False
                res = raid5_life(rig, ops=40)
                assert res["bad"] == 0 and res["checked"] > 300
                assert res["job"]["state"] == "done" and res["group"]["state"] == "normal"
                link = u.table("link")
                assert link["frames"] > 1000 and link["bad_crc"] == 0 and link["bad_cobs"] == 0
                assert u.link.rx_bytes > 500_000
            assert s2n.proc.poll() is None          # ser2net served the whole run
    assert not board.alive()
