"""fio job files (host/fio.py, `storlab run`): the format's options and errors, the
plan against a rig, and runs on a real (in-process) unit: queue depth and clones on
disjoint slices, faults fired after a number of I/Os, verification that catches bad
data."""
import random
import re

import pytest
from conftest import rig_desc

from host import fio
from host.rig import Rig


def write(tmp_path, text, name="job.fio"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture
def rig(tmp_path):
    r = Rig(rig_desc(), state_dir=tmp_path / "rig", board="inprocess")
    yield r
    r.close()


def test_values_in_fio_units():
    assert [fio.parse_size(s) for s in ("4096", "4k", "4K", "4KiB", "1m", "2g")] == \
        [4096, 4096, 4096, 4096, 1 << 20, 2 << 30]
    assert fio.parse_size_or_pct("50%") == ("%", 50.0)
    assert [fio.parse_time(s) for s in ("10", "500ms", "2s", "1m", "100us")] == pytest.approx([10, 0.5, 2, 60, 1e-4])
    assert fio.parse_verify("crc32c") and fio.parse_verify("md5") and not fio.parse_verify("0")
    for bad, parse in (("4x", fio.parse_size), ("soon", fio.parse_time), ("trim", fio.parse_rw)):
        with pytest.raises(ValueError):
            parse(bad)


def test_global_sections_apply_to_the_jobs_after_them_and_stonewall_makes_groups(tmp_path):
    jf = fio.load(write(tmp_path, "[global]\nbs=8k\niodepth=2\n[a]\nrw=randread\n[b]\nrw=write\nbs=4k\nstonewall\n"
                                  "[global]\nbs=4k\n[c]\nreadwrite=randrw\nrwmixwrite=30\nioengine=libaio\n"))
    a, b, c = jf.jobs
    assert (a.bs, a.iodepth, a.group, a.raw["rw"]) == (8192, 2, 0, "randread")
    assert (b.bs, b.group) == (4096, 1) and (c.rw, c.rwmixread, c.group) == ("randrw", 70, 1)
    assert fio.load(jf.path, sections=["c"]).jobs[0].group == 0


@pytest.mark.parametrize("text,says", [
    ("[a]\nrw=randread\nbz=4k\n", "job.fio:3: [a] unknown job option 'bz' (did you mean 'bs'?)"),
    ("[a]\nrw=trim\n", "job.fio:2: [a] rw=trim: 'trim': rw must be one of read, write"),
    ("[a]\nbs=4q\n", "job.fio:2: [a] bs=4q: '4q' is not a size"),
    ("[a]\ntime_based\n", "job.fio:2: [a] time_based needs a runtime="),
    ("[global]\nbs=4k\n", "job.fio: no job in the file"),
    ("[a]\n[a]\n", "job.fio:2: not a job file: section 'a' already exists"),
    ("[fault-x]\ndrive=1\nwhat=fail\n", "job.fio:1: [fault-x] needs one of after_ops= (I/Os) or at= (a time)"),
    ("[fault-x]\ndrive=1\nwhat=explode\nat=1s\n", "job.fio:3: [fault-x] what=explode: 'explode': one of fail"),
])
def test_a_bad_job_file_is_refused_naming_the_line(tmp_path, text, says):
    with pytest.raises(fio.JobFileError) as e:
        fio.load(write(tmp_path, text))
    assert says in str(e.value)


def test_the_plan_gives_every_clone_and_queue_slot_a_slice_of_its_own(tmp_path, rig):
    jf = fio.load(write(tmp_path, "[a]\nrw=randwrite\nbs=8k\nnumjobs=2\niodepth=3\nsize=50%\nverify=1\n"))
    p = fio.plan(jf, rig).groups[0][0]
    assert (p.start, p.blocks, p.bs_blocks, p.budget) == (0, 64, 2, 32)
    flat = [s for c in p.slices for s in c]
    assert len(flat) == 6 and flat[0][0] == 0 and flat[-1][1] == 32
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(flat, flat[1:]))
    for text, says in (("[a]\nbs=6k\n", "bs=6k: not a multiple of the rig's 4096-byte blocks"),
                       ("[a]\nvolume=7\n", "volume=7: unit u0 has no such volume (its volumes: 0, 1)"),
                       ("[a]\nhost=h9\n", "host=h9: no such host (the rig's: h0)"),
                       ("[a]\nsize=8k\niodepth=4\n", "fewer than numjobs x iodepth = 4 pieces"),
                       ("[a]\n[fault-a]\ndrive=9\nwhat=fail\nat=0\n", "drive=9: unit u0 has drives 0..4")):
        with pytest.raises(fio.JobFileError, match=re.escape(says)):
            fio.plan(fio.load(write(tmp_path, text)), rig)


def test_clones_at_queue_depth_verify_every_block_and_report_as_fio(tmp_path, rig):
    rig.start()
    jf = fio.load(write(tmp_path, "[global]\nverify=crc32c\n[mix]\nrw=randrw\nnumjobs=2\niodepth=2\nsize=256k\n"
                                  "number_ios=50\n[seq]\nrw=rw\nvolume=1\nsize=64k\nnumber_ios=30\nrandseed=7\n"))
    res = fio.run(fio.plan(jf, rig), rig)
    assert [(j.name, j.clone) for j in res.jobs] == [("mix", 0), ("mix", 1), ("seq", 0)]
    for j in res.jobs:
        ios = len(j.read.lat_ns) + len(j.write.lat_ns)
        assert ios == (50 if j.name == "mix" else 30) and j.error == 0 and j.bad == 0
    assert res.ok() and sum(j.checked for j in res.jobs) > 0
    d = res.json()
    assert [j["jobname"] for j in d["jobs"]] == ["mix", "mix", "seq"]
    assert d["jobs"][2]["storlab"]["volume"] == 1 and d["jobs"][0]["job options"]["numjobs"] == "2"
    assert "mix: (groupid=0, jobs=1): err= 0: rw=randrw, bs=4096, iodepth=2, volume 0 on u0, clone 1" in res.text()


def test_faults_fire_after_their_number_of_ios(tmp_path, rig):
    rig.start()
    u = rig.unit()
    jf = fio.load(write(tmp_path, "[r]\nrw=randrw\nverify=1\nnumber_ios=80\niodepth=2\nsize=128k\n"
                                  "[fault-medium]\ndrive=0\nwhat=medium\nstart=0\ncount=16\nafter_ops=20\n"
                                  "[fault-slow]\ndrive=2\nwhat=latency\nlatency=2ms\nafter_ops=40\n"
                                  "[fault-now]\ndrive=3\nwhat=recovered\nat=0\n"))
    res = fio.run(fio.plan(jf, rig), rig)
    fired = {f["name"]: f["fired_op"] for f in res.faults}
    assert fired == {"fault-medium": 20, "fault-slow": 40, "fault-now": 0}
    assert u.drives[0].faults.medium == [(0, 16)] and u.drives[2].faults.latency == 0.002
    assert res.ok(), res.text()        # RAID5 reads around the unreadable blocks


def test_verification_catches_data_a_drive_changed_behind_the_controller(tmp_path, rig):
    rig.start()
    u = rig.unit()
    first = fio.run(fio.plan(fio.load(write(tmp_path, "[w]\nrw=write\nverify=1\nsize=256k\nend_fsync=1\n")), rig),
                    rig)
    assert first.ok() and first.jobs[0].readback == 64
    u.restart()                                  # a cold cache: the next reads reach the drives
    d = u.drives[0]
    d.write_raw(0, random.Random(1).randbytes(d.blocks * d.bs))
    res = fio.run(fio.plan(fio.load(write(tmp_path, "[r]\nrw=read\nverify=1\nsize=256k\n", "r.fio")), rig), rig,
                  verify_state=first.verify_state)
    j = res.jobs[0]
    assert j.bad > 0 and j.error == fio.EILSEQ and not res.ok()
    assert "expected gen 1, found foreign data" in j.mismatches[0]
    assert res.json()["storlab"]["bad_blocks"] == j.bad


def test_time_based_runs_for_its_runtime(tmp_path, rig):
    rig.start()
    res = fio.run(fio.plan(fio.load(write(tmp_path, "[t]\nrw=randread\nruntime=100ms\ntime_based\nsize=64k\n")),
                           rig), rig)
    assert res.jobs[0].elapsed_s >= 0.1 and len(res.jobs[0].read.lat_ns) > 0
