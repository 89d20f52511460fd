"""Workloads in fio's job-file format, run against a rig, with fio's results: its JSON
(`--output-format=json`: jobs[].read/write.{io_bytes, bw, iops, clat_ns.percentile})
and its text summary (IOPS, BW, completion-latency percentiles).

    [global]
    bs=4k
    size=1m
    verify=crc32c          ; any verify: every block carries its address and generation

    [randrw]
    rw=randrw
    iodepth=4

    [fault-drive1]         ; a section whose name starts with "fault" schedules a fault
    drive=1
    what=fail
    after_ops=200

`load()` reads and checks a job file (no board involved), `plan()` checks it against a
rig's description, `run()` runs it on the started rig.  docs/cli.md lists every option.

Queue depth.  iodepth N is N queue slots, each owning a disjoint slice of the job's
region (so every block has one writer and its check is exact), each with one request
in flight; the slots' requests are outstanding together on the unit's link (as many
as the board has request workers).  All of it is behind `issue()`.
"""
from __future__ import annotations

import configparser
import difflib
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from host.hostio import block_content

VERSION = "storlab-fio-1"
# fio's default completion-latency percentiles
PCTS = (1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99)
SHOWN = (50.0, 90.0, 99.0, 99.9)
RW = {"read": ("read", False), "write": ("write", False), "randread": ("read", True),
      "randwrite": ("write", True), "rw": ("mixed", False), "readwrite": ("mixed", False),
      "randrw": ("mixed", True)}
EIO, EILSEQ = 5, 84      # fio's job error numbers: an I/O error, a verify failure


class JobFileError(Exception):
    """A job file that cannot be run: one line, naming the file and line."""


# ---- values ------------------------------------------------------------------------
_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(s: str) -> int:
    """fio sizes: 4096, 4k, 4K, 4KiB, 1m, 2g (powers of 1024, as fio's default kb_base)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", s.lower())
    if not m:
        raise ValueError(f"{s!r} is not a size (4096, 4k, 1m, 2g)")
    return int(m.group(1)) * _MULT[m.group(2)]


def parse_size_or_pct(s: str):
    if s.strip().endswith("%"):
        v = float(s.strip()[:-1])
        if not 0 <= v <= 100:
            raise ValueError(f"{s!r}: a percentage must be 0..100")
        return ("%", v)
    return parse_size(s)


_TIME = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "usec": 1e-6, "m": 60.0,
         "min": 60.0, "h": 3600.0}


def parse_time(s: str) -> float:
    """fio times: 10 (seconds), 500ms, 2s, 1m, 100us."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", s.lower())
    if not m or m.group(2) not in _TIME:
        raise ValueError(f"{s!r} is not a time (10, 500ms, 2s, 1m)")
    return float(m.group(1)) * _TIME[m.group(2)]


def parse_bool(s: str | None) -> bool:
    if s is None:
        return True      # a bare option: `time_based`
    v = s.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{s!r} is not 0 or 1")


def parse_int(lo: int, hi: int | None = None):
    def p(s):
        try:
            v = int(s)
        except (TypeError, ValueError):
            raise ValueError(f"{s!r} is not a whole number") from None
        if v < lo or (hi is not None and v > hi):
            raise ValueError(f"{v} is out of range ({lo}..{hi if hi is not None else ''})")
        return v
    return p


def parse_rw(s):
    v = (s or "").strip().lower()
    if v not in RW:
        raise ValueError(f"{s!r}: rw must be one of {', '.join(RW)}")
    return v


def parse_verify(s) -> bool:
    """verify=0 is off; any of fio's methods (crc32c, md5, meta, ...) turns it on: every
    block then carries its address and generation, and every read is checked."""
    return (s or "").strip().lower() not in ("0", "", "none", "false", "off")


# option -> (parser, default as written, help)
JOB_OPTIONS = {
    "rw": (parse_rw, "read", "read, write, randread, randwrite, rw (or readwrite: sequential mixed), randrw"),
    "readwrite": (parse_rw, None, "the same as rw"),
    "bs": (parse_size, "4k", "bytes per I/O (a multiple of the rig's block size)"),
    "iodepth": (parse_int(1, 256), "1", "I/Os in flight for each job (each slot on a slice of its own; at most "
                                        "the board's request workers in flight on a unit)"),
    "size": (parse_size_or_pct, "100%", "the job's region, from offset (bytes or % of the volume), and the "
                                        "I/O it does unless io_size, number_ios or time_based say otherwise"),
    "io_size": (parse_size, None, "bytes of I/O, if not size"),
    "offset": (parse_size_or_pct, "0", "where the region starts on the volume (bytes or %)"),
    "runtime": (parse_time, None, "stop after this long (10, 500ms, 2m)"),
    "time_based": (parse_bool, "0", "run for the whole runtime, going round the region again"),
    "number_ios": (parse_int(1), None, "stop after this many I/Os"),
    "numjobs": (parse_int(1, 64), "1", "clones of the job, each on its own part of the region"),
    "verify": (parse_verify, "0", "check every block read (any method: crc32c, md5, meta, ...), and read back "
                                  "what the job wrote at its end"),
    "rwmixread": (parse_int(0, 100), "50", "percent of reads in a mixed job"),
    "rwmixwrite": (parse_int(0, 100), None, "percent of writes in a mixed job (100 - rwmixread)"),
    "end_fsync": (parse_bool, "0", "FLUSH the unit's cache when the job ends (inside its run time)"),
    "stonewall": (parse_bool, "0", "wait for the jobs before this one to end before starting"),
    "wait_for_previous": (parse_bool, "0", "the same as stonewall"),
    "randseed": (parse_int(0), "1", "seed of the random offsets and of the read/write mix"),
    "volume": (parse_int(0, 65535), "0", "storlab: the volume the job runs on"),
    "host": (str, None, "storlab: the host computer (default: the rig's first)"),
}
# fio options accepted and ignored (they change nothing here)
IGNORED = ("ioengine", "direct", "thread", "group_reporting", "description", "randrepeat", "norandommap",
           "buffered", "invalidate", "name")
FAULT_WHAT = ("fail", "medium", "defect", "recovered", "write_fault", "latency", "clear")
FAULT_OPTIONS = {
    "drive": (parse_int(0), None, "the drive (its index in the unit)"),
    "what": (lambda s: _choice(s, FAULT_WHAT), None, "fail, medium (unreadable blocks), defect, recovered "
                                                     "(corrected errors), write_fault, latency, clear"),
    "after_ops": (parse_int(0), None, "when: after this many I/Os of all the jobs"),
    "at": (parse_time, None, "when: this long after the start (2s, 500ms)"),
    "start": (parse_int(0), "0", "first drive block of a medium / defect / recovered / write_fault range"),
    "count": (parse_int(1), None, "blocks in that range (default: to the end of the drive)"),
    "latency": (parse_time, "0", "latency: added time per drive command (20ms)"),
    "unit": (str, None, "the unit (default: the rig's first)"),
}


def _choice(s, choices):
    v = (s or "").strip().lower()
    if v not in choices:
        raise ValueError(f"{s!r}: one of {', '.join(choices)}")
    return v


@dataclass
class JobSpec:
    name: str
    opts: dict            # parsed values
    raw: dict             # as written (fio's "job options")
    line: int
    group: int = 0

    def __getattr__(self, k):
        try:
            return self.__dict__["opts"][k]
        except KeyError:
            raise AttributeError(k) from None


@dataclass
class FaultSpec:
    name: str
    opts: dict
    line: int
    fired: dict | None = None


@dataclass
class JobFile:
    path: str
    jobs: list
    faults: list
    global_raw: dict


def _lines(text: str) -> dict:
    """(section, key) -> line number, and (section, None) -> the section's line."""
    out = {}
    sect = None
    for i, line in enumerate(text.splitlines(), 1):
        s = line.split(";")[0].split("#")[0].strip()
        m = re.fullmatch(r"\[(.+)\]", s)
        if m:
            sect = m.group(1).strip()
            out.setdefault((sect, None), i)
        elif s and sect is not None:
            out.setdefault((sect, s.split("=")[0].strip().lower()), i)
    return out


def load(path, sections=None, overrides: dict | None = None) -> JobFile:
    """Read and check a job file.  sections: only these jobs (fio's --section);
    overrides: options set on every job, as on fio's command line."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise JobFileError(f"{path}: no such job file") from None
    except OSError as e:
        raise JobFileError(f"{path}: cannot read the job file ({e.strerror})") from None
    n_global = [0]

    def number_global(m):      # fio allows several [global] sections, each for the jobs after it
        n_global[0] += 1
        return m.group(0) if n_global[0] == 1 else m.group(0).replace("global", f"global\x01{n_global[0]}")
    text = re.sub(r"(?m)^\s*\[\s*global\s*\]", number_global, text)
    cp = configparser.ConfigParser(allow_no_value=True, interpolation=None, strict=True, delimiters=("=",),
                                   comment_prefixes=("#", ";"), inline_comment_prefixes=(";", "#"),
                                   default_section="\x00none")
    try:
        cp.read_string(text, source=str(path))
    except configparser.Error as e:
        msg = str(e).replace("\n", " ")
        m = re.search(r"\[line\s+(\d+)\]", msg)
        raise JobFileError(f"{path}:{m.group(1) + ':' if m else ''} not a job file: "
                           f"{msg.split(']: ', 1)[-1] if m else msg}") from None
    lines = _lines(text)
    glob: dict = {}
    jobs, faults = [], []
    group = 0
    for sect in cp.sections():
        items = dict(cp.items(sect))
        where = lambda k, sect=sect: f"{path}:{lines.get((sect, k), lines.get((sect, None), '?'))}"   # noqa: E731
        if sect.lower().startswith("fault"):
            opts = _parse(items, FAULT_OPTIONS, sect, where, "fault")
            for k in ("drive", "what"):
                if opts.get(k) is None:
                    raise JobFileError(f"{where(None)}: [{sect}] needs {k}= ({FAULT_OPTIONS[k][2]})")
            if (opts.get("after_ops") is None) == (opts.get("at") is None):
                raise JobFileError(f"{where(None)}: [{sect}] needs one of after_ops= (I/Os) or at= (a time)")
            faults.append(FaultSpec(sect, opts, lines.get((sect, None), 0)))
            continue
        if sect.partition("\x01")[0] == "global":
            _parse(items, JOB_OPTIONS, sect, where, "job")     # checked now, applied to the jobs after it
            glob.update(items)
            continue
        raw = {**glob, **items, **{k: str(v) for k, v in (overrides or {}).items()}}
        opts = _parse(raw, JOB_OPTIONS, sect, where, "job")
        if "readwrite" in raw and "rw" not in raw:
            opts["rw"] = opts["readwrite"]
        if "rwmixwrite" in raw and "rwmixread" not in raw:
            opts["rwmixread"] = 100 - opts["rwmixwrite"]
        if opts["time_based"] and opts["runtime"] is None:
            raise JobFileError(f"{where('time_based')}: [{sect}] time_based needs a runtime=")
        if jobs and (opts["stonewall"] or opts["wait_for_previous"]):
            group += 1
        jobs.append(JobSpec(sect, opts, {k: ("" if v is None else v) for k, v in raw.items()},
                            lines.get((sect, None), 0), group))
    if sections:
        names = [j.name for j in jobs]
        for s in sections:
            if s not in names:
                near = difflib.get_close_matches(s, names, n=1)
                raise JobFileError(f"{path}: no job [{s}]" + (f" (did you mean [{near[0]}]?)" if near else
                                                              f" (jobs: {', '.join(names)})"))
        jobs = [j for j in jobs if j.name in sections]
        base = min(j.group for j in jobs)
        for j in jobs:
            j.group -= base
    if not jobs:
        raise JobFileError(f"{path}: no job in the file (a job is a [section] other than [global] and [fault...])")
    return JobFile(str(path), jobs, faults, glob)


def _parse(items: dict, options: dict, sect: str, where, kind: str) -> dict:
    out = {}
    for k, (parse, default, _) in options.items():
        v = items.get(k, default)
        if k not in items and default is None:
            out[k] = None
            continue
        try:
            out[k] = parse(v) if (v is not None or parse is parse_bool) else None
        except ValueError as e:
            raise JobFileError(f"{where(k)}: [{sect}] {k}={v}: {e}") from None
    for k in items:
        if k not in options and not (kind == "job" and k in IGNORED):
            valid = list(options) + (list(IGNORED) if kind == "job" else [])
            near = difflib.get_close_matches(k, valid, n=1, cutoff=0.5)
            hint = f"did you mean {near[0]!r}?" if near else f"options: {', '.join(options)}"
            raise JobFileError(f"{where(k)}: [{sect}] unknown {kind} option {k!r} ({hint})")
    return out


# ---- against a rig --------------------------------------------------------------------
@dataclass
class Planned:
    spec: JobSpec
    unit: str
    host: str
    vol: int
    start: int            # region: first volume block
    blocks: int           # region: blocks
    bs_blocks: int
    budget: int | None    # I/Os per clone (None: until runtime)
    slices: list          # per clone, per slot: (first granule, end granule) in bs units from start


@dataclass
class Plan:
    file: JobFile
    groups: list          # list of lists of Planned
    faults: list


def plan(jf: JobFile, rig) -> Plan:
    """Check the jobs against the rig's description (volumes, hosts, drives); no board yet."""
    bs = rig.block_size
    out: list[Planned] = []
    for j in jf.jobs:
        where = f"{jf.path}:{j.line}: [{j.name}]"
        hname = j.host or (next(iter(rig.hosts)) if rig.hosts else None)
        if hname is None:
            raise JobFileError(f"{where} the rig {rig.name} has no [[host]] to run the job from")
        if hname not in rig.hosts:
            raise JobFileError(f"{where} host={hname}: no such host (the rig's: {', '.join(rig.hosts)})")
        u = rig.hosts[hname].unit
        vols = {v["id"]: v for v in u.desc.get("volume", [])}
        if j.volume not in vols:
            raise JobFileError(f"{where} volume={j.volume}: unit {u.name} has no such volume "
                               f"(its volumes: {', '.join(map(str, vols)) or 'none'})")
        v = vols[j.volume]
        vblocks = v.get("blocks") or sum(e.get("blocks", 0) for e in v.get("extents", []))
        if j.bs % bs:
            raise JobFileError(f"{where} bs={j.raw.get('bs')}: not a multiple of the rig's {bs}-byte blocks")
        bsb = j.bs // bs

        def blocks_of(v, what, vblocks=vblocks, where=where, j=j):
            if isinstance(v, tuple):
                return int(vblocks * v[1] / 100)
            if v % bs:
                raise JobFileError(f"{where} {what}={j.raw.get(what)}: not a multiple of the rig's {bs}-byte blocks")
            return v // bs
        off = blocks_of(j.offset, "offset")
        size = blocks_of(j.size, "size")
        if off + size > vblocks:
            size = vblocks - off if isinstance(j.size, tuple) else size
            if off + size > vblocks or size <= 0:
                raise JobFileError(f"{where} offset+size = {(off + size) * bs} bytes: beyond volume {j.volume}'s "
                                   f"{vblocks * bs} bytes ({vblocks} blocks of {bs})")
        granules = size // bsb
        k = j.numjobs * j.iodepth
        if granules < k:
            raise JobFileError(f"{where} a region of {size} blocks gives fewer than numjobs x iodepth = {k} "
                               f"pieces of bs={j.bs} bytes")
        slices = [[((c * j.iodepth + s) * granules // k, (c * j.iodepth + s + 1) * granules // k)
                   for s in range(j.iodepth)] for c in range(j.numjobs)]
        if j.number_ios is not None:
            budget = j.number_ios
        elif j.time_based:
            budget = None
        else:
            budget = max(1, (j.io_size if j.io_size is not None else size * bs) // j.bs)
        out.append(Planned(j, u.name, hname, j.volume, off, size, bsb, budget, slices))
    groups: list[list[Planned]] = []
    for p in out:
        while len(groups) <= p.spec.group:
            groups.append([])
        groups[p.spec.group].append(p)
    for g in groups:       # verified writers must not share blocks: the check would be ambiguous
        for i, a in enumerate(g):
            for b in g[i + 1:]:
                writes = RW[a.spec.rw][0] != "read" or RW[b.spec.rw][0] != "read"
                if (a.unit, a.vol) == (b.unit, b.vol) and writes and (a.spec.verify or b.spec.verify) \
                        and a.start < b.start + b.blocks and b.start < a.start + a.blocks:
                    raise JobFileError(f"{jf.path}: jobs [{a.spec.name}] and [{b.spec.name}] run together on "
                                       f"overlapping blocks of volume {a.vol} with verify: give them disjoint "
                                       f"offset/size, or put stonewall in the second")
    for f in jf.faults:
        uname = f.opts["unit"] or (next(iter(rig.units)) if rig.units else None)
        if uname not in rig.units:
            raise JobFileError(f"{jf.path}:{f.line}: [{f.name}] unit={uname}: no such unit "
                               f"(the rig's: {', '.join(rig.units)})")
        nd = len(rig.units[uname].drives)
        if f.opts["drive"] >= nd:
            raise JobFileError(f"{jf.path}:{f.line}: [{f.name}] drive={f.opts['drive']}: unit {uname} has drives "
                               f"0..{nd - 1}")
        f.opts["unit"] = uname
    return Plan(jf, groups, jf.faults)


# ---- issuing I/O ----------------------------------------------------------------------
@dataclass
class Request:
    op: str               # "read" or "write"
    unit: object
    vol: int
    lba: int
    count: int
    data: bytes | None = None
    tag: object = None
    busy: int = 0         # BUSY answers before it was taken


def issue(streams: list, complete) -> None:
    """Run every stream of requests [(unit, iterator of Request)], one request of each
    in flight at a time: the queue depth is len(streams).  complete(req, data, lat_ns,
    error) is called for each request as its answer comes; it returns False to end that
    stream.  The requests of one unit are kept outstanding together on its link
    (Unit.start_io / finish_io), up to the board's request workers (one left for
    management, as HostComputer.run_queue does); a BUSY answer is sent again."""
    by_unit: dict = {}
    for u, it in streams:
        by_unit.setdefault(id(u), (u, []))[1].append(it)
    if len(by_unit) == 1:
        u, its = next(iter(by_unit.values()))
        return _pipeline(u, its, complete)
    threads = [threading.Thread(target=_pipeline, args=(u, its, complete), daemon=True)
               for u, its in by_unit.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _pipeline(u, its: list, complete):
    from firmware import wire
    from host.link import StatusError

    pc = time.perf_counter_ns
    chunk = u._io_chunk()
    # frames outstanding at once: as many as the board has request workers (one left
    # for management); more would be refused BUSY and sent again, data and all
    cap = max(1, u.hello.get("workers", len(its) + 1) - 1)
    ready = list(range(len(its)))           # streams whose next request may go
    inflight: dict = {}                     # id(frame handle) -> (handle, slot, part)
    queued: list = []                       # (slot, part) of started requests not yet sent
    cur: dict = {}                          # slot -> [req, t0, parts left, answers, error]

    def send(slot, i):
        req = cur[slot][0]
        lba = req.lba + i * chunk
        k = min(chunk, req.count - i * chunk)
        if req.op == "read":
            w = u.start_io("r", req.vol, lba, k)
        else:
            bs = u.block_size
            w = u.start_io("w", req.vol, lba, req.data[i * chunk * bs:(i * chunk + k) * bs])
        inflight[id(w)] = (w, slot, i)

    def start(slot) -> bool:
        try:
            req = next(its[slot])
        except StopIteration:
            return False
        parts = -(-req.count // chunk)
        cur[slot] = [req, pc(), parts, [b""] * parts, None]
        queued.extend((slot, i) for i in range(parts))
        return True

    def pump():
        while queued and len(inflight) < cap:
            slot, i = queued.pop(0)
            try:
                send(slot, i)
            except Exception as e:     # the link is down: the stream ends with the error
                req = cur[slot][0]
                queued[:] = [q for q in queued if q[0] != slot]
                complete(req, None, pc() - cur[slot][1], e)
                return False
        return True

    while ready or inflight or queued:
        while ready and len(inflight) + len(queued) < cap:    # room on the link: the next request
            start(ready.pop(0))
        if not pump():
            return
        if not inflight:
            continue
        w = u._up().wait_any([x[0] for x in inflight.values()])
        _, slot, i = inflight.pop(id(w))
        st = cur[slot]
        try:
            st[3][i] = u.finish_io(w)
        except StatusError as e:
            if e.status == wire.E_BUSY:       # every worker of the board taken: again
                st[0].busy += 1
                queued.insert(0, (slot, i))
                continue
            st[4] = st[4] or e
        except Exception as e:                # no answer: the link failed
            st[4] = st[4] or e
        st[2] -= 1
        if st[2]:
            continue
        req = st[0]
        data = b"".join(st[3]) if req.op == "read" and st[4] is None else None
        if not complete(req, data, pc() - st[1], st[4]):
            if st[4] is not None and not hasattr(st[4], "status"):
                return          # the link failed: what is still in flight will not be answered
            continue
        ready.append(slot)


# ---- results ------------------------------------------------------------------------
def percentile(sorted_vals, pct):
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_vals:
        return 0
    k = max(1, math.ceil(pct / 100.0 * len(sorted_vals)))
    return sorted_vals[min(k, len(sorted_vals)) - 1]


def lat_stats(lat_ns: list) -> dict:
    v = sorted(lat_ns)
    n = len(v)
    mean = sum(v) / n if n else 0.0
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / n) if n else 0.0
    return {"min": v[0] if v else 0, "max": v[-1] if v else 0, "mean": round(mean, 1), "stddev": round(sd, 1),
            "N": n, "percentile": {"%.6f" % p: percentile(v, p) for p in PCTS}}


@dataclass
class Side:
    lat_ns: list = field(default_factory=list)
    bytes: int = 0

    def json(self, elapsed_s: float) -> dict:
        n = len(self.lat_ns)
        bw = self.bytes / elapsed_s if elapsed_s else 0.0
        clat = lat_stats(self.lat_ns)
        zero = {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}
        return {"io_bytes": self.bytes, "io_kbytes": self.bytes // 1024, "bw_bytes": round(bw),
                "bw": round(bw / 1024), "iops": round(n / elapsed_s, 2) if elapsed_s else 0.0,
                "runtime": round(elapsed_s * 1e3), "total_ios": n, "short_ios": 0, "drop_ios": 0,
                "slat_ns": zero, "clat_ns": clat, "lat_ns": {k: v for k, v in clat.items() if k != "percentile"}}


@dataclass
class JobResult:
    planned: Planned
    clone: int
    read: Side = field(default_factory=Side)
    write: Side = field(default_factory=Side)
    elapsed_s: float = 0.0
    error: int = 0
    io_errors: list = field(default_factory=list)
    checked: int = 0
    bad: int = 0
    mismatches: list = field(default_factory=list)
    readback: int = 0
    last: float = 0.0     # when its last I/O completed
    busy: int = 0         # BUSY answers retried
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.planned.spec.name

    def json(self) -> dict:
        p = self.planned
        return {"jobname": self.name, "groupid": p.spec.group, "error": self.error, "eta": 0,
                "elapsed": max(1, round(self.elapsed_s)), "job options": dict(p.spec.raw),
                "read": self.read.json(self.elapsed_s), "write": self.write.json(self.elapsed_s),
                "trim": Side().json(self.elapsed_s), "job_runtime": round(self.elapsed_s * 1e3),
                "storlab": {"unit": p.unit, "host": p.host, "volume": p.vol, "clone": self.clone,
                            "region_blocks": [p.start, p.blocks], "iodepth": p.spec.iodepth,
                            "verify": {"enabled": p.spec.verify, "blocks_checked": self.checked, "bad_blocks": self.bad,
                                       "read_back": self.readback, "mismatches": self.mismatches[:10]},
                            "io_errors": self.io_errors[:10], "busy_retries": self.busy}}

    def summary(self, side: str, **info) -> dict:
        """One direction in the short form of the benchmark report (bench/fio.table)."""
        s = getattr(self, side)
        js = s.json(self.elapsed_s)
        d = {"job": self.name, "rw": side, "bs": self.planned.spec.bs, "ios": js["total_ios"], "iops": js["iops"],
             "MBps": round(s.bytes / self.elapsed_s / 1e6, 3) if self.elapsed_s else 0.0}
        for q in SHOWN:
            d["p%s_us" % _pname(q)] = round(js["clat_ns"]["percentile"]["%.6f" % q] / 1e3, 1)
        d.update(info)
        return d


def _pname(q: float) -> str:
    return ("%g" % q).replace(".", "_")


def _kib(n: float) -> str:
    for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= k:
            return f"{n / k:.4g}{unit}"
    return f"{n:.0f}B"


def _kb(n: float) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.4g}{unit}"
    return f"{n:.0f}B"


@dataclass
class Results:
    plan: Plan
    jobs: list
    rig: str
    board: str
    started: float
    faults: list
    verify_state: dict = field(default_factory=dict, repr=False)

    def ok(self) -> bool:
        return all(j.bad == 0 and not j.io_errors for j in self.jobs)

    def json(self) -> dict:
        return {"fio version": VERSION, "timestamp": int(self.started), "timestamp_ms": int(self.started * 1e3),
                "time": time.ctime(self.started), "global options": dict(self.plan.file.global_raw),
                "jobs": [j.json() for j in self.jobs],
                "storlab": {"job_file": self.plan.file.path, "rig": self.rig, "board": self.board,
                            "faults": self.faults, "blocks_checked": sum(j.checked for j in self.jobs),
                            "bad_blocks": sum(j.bad for j in self.jobs),
                            "io_errors": sum(len(j.io_errors) for j in self.jobs), "ok": self.ok()}}

    def text(self) -> str:
        out = []
        for j in self.jobs:
            sp = j.planned.spec
            out.append(f"{j.name}: (groupid={sp.group}, jobs=1): err={j.error:2d}: rw={sp.rw}, bs={sp.bs}, "
                       f"iodepth={sp.iodepth}, volume {j.planned.vol} on {j.planned.unit}"
                       + (f", clone {j.clone}" if sp.numjobs > 1 else ""))
            for side in ("read", "write"):
                s = getattr(j, side)
                if not s.lat_ns:
                    continue
                js = s.json(j.elapsed_s)
                c = js["clat_ns"]
                out.append(f"  {side:>5}: IOPS={js['iops']:.0f}, BW={_kib(js['bw_bytes'])}/s "
                           f"({_kb(js['bw_bytes'])}/s)({_kib(s.bytes)}/{js['runtime']}msec)")
                out.append(f"    clat (usec): min={c['min'] / 1e3:.0f}, max={c['max'] / 1e3:.0f}, "
                           f"avg={c['mean'] / 1e3:.2f}, stdev={c['stddev'] / 1e3:.2f}")
                out.append("    clat percentiles (usec):")
                items = [f"{float(k):5.2f}th=[{v / 1e3:6.0f}]" for k, v in c["percentile"].items()]
                for i in range(0, len(items), 4):
                    out.append("     | " + ", ".join(items[i:i + 4]) + ("," if i + 4 < len(items) else ""))
            if sp.verify:
                out.append(f"  verify: {j.checked} blocks checked ({j.readback} read back at the end), {j.bad} bad")
                out += [f"    {m}" for m in j.mismatches[:5]]
            if j.busy:
                out.append(f"  busy: {j.busy} BUSY answers (every worker of the unit taken), retried")
            for e in j.io_errors[:5]:
                out.append(f"  I/O error: {e}")
        for f in self.faults:
            when = f"after {f['after_ops']} I/Os" if f.get("after_ops") is not None else f"at {f['at']} s"
            fired = (f"fired at I/O {f['fired_op']}, {f['fired_s']:.2f} s" if f.get("fired_op") is not None
                     else "not fired (the jobs ended first)")
            out.append(f"fault [{f['name']}]: unit {f['unit']} drive {f['drive']} {f['what']} {when}: {fired}")
        groups = sorted({j.planned.spec.group for j in self.jobs})
        for g in groups:
            js = [j for j in self.jobs if j.planned.spec.group == g]
            out.append(f"\nRun status group {g} (all jobs):")
            for side in ("read", "write"):
                b = sum(getattr(j, side).bytes for j in js)
                if not b:
                    continue
                t = max(j.elapsed_s for j in js)
                out.append(f"  {side.upper():>5}: bw={_kib(b / t)}/s ({_kb(b / t)}/s), io={_kib(b)} ({_kb(b)}), "
                           f"run={min(round(j.elapsed_s * 1e3) for j in js)}-{round(t * 1e3)}msec")
        return "\n".join(out)

    def verdict(self) -> str:
        checked = sum(j.checked for j in self.jobs)
        bad = sum(j.bad for j in self.jobs)
        errs = sum(len(j.io_errors) for j in self.jobs)
        ios = sum(len(j.read.lat_ns) + len(j.write.lat_ns) for j in self.jobs)
        fired = sum(1 for f in self.faults if f.get("fired_op") is not None)
        return (f"{len(self.jobs)} job(s), {ios} I/Os, {checked} blocks verified, {bad} bad, {errs} I/O errors"
                + (f"; {fired}/{len(self.faults)} faults injected" if self.faults else ""))


# ---- running ------------------------------------------------------------------------
def run(p: Plan, rig, progress=None, verify_state: dict | None = None) -> Results:
    """Run the plan on the started rig; progress: a rich Console for progress bars.
    verify_state: what an earlier run on the same rig wrote (its Results.verify_state),
    so this one checks those blocks too."""
    from host.link import LinkError

    t_start = time.time()
    t0 = time.monotonic()
    vs = verify_state if verify_state is not None else {
        "gens": {}, "fresh": {n: not u.hello.get("configured", False) for n, u in rig.units.items()}}
    gens: dict = vs["gens"]        # (unit, vol, lba) -> generation; -1: written without verify data
    fresh = vs["fresh"]            # unit -> its volumes were zeros when the first run began
    ops = [0]
    oplock = threading.Lock()
    fatal: list = []
    faults = [{"name": f.name, "unit": f.opts["unit"], "drive": f.opts["drive"], "what": f.opts["what"],
               "after_ops": f.opts["after_ops"], "at": f.opts["at"], "fired_op": None, "fired_s": None}
              for f in p.faults]
    fault_specs = list(zip(p.faults, faults))
    results: list[JobResult] = []
    bar = None
    if progress is not None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description:24}"), BarColumn(), TextColumn("{task.completed} I/Os"),
                       TimeElapsedColumn(), console=progress)
        bar.start()

    def fire_due():
        now = time.monotonic() - t0
        for f, rec in fault_specs:
            if rec["fired_op"] is None and ((rec["after_ops"] is not None and ops[0] >= rec["after_ops"])
                                            or (rec["at"] is not None and now >= rec["at"])):
                o = f.opts
                rig.unit(o["unit"]).inject(o["drive"], o["what"], start=o["start"] or 0, count=o["count"],
                                           seconds=o["latency"] or 0.0)
                rec["fired_op"], rec["fired_s"] = ops[0], round(now, 3)

    try:
        with oplock:
            fire_due()
        for group in p.groups:
            clones = []
            for pl in group:
                for c in range(pl.spec.numjobs):
                    clones.append(JobResult(pl, c))
            results += clones
            _run_group(clones, rig, gens, fresh, ops, oplock, fire_due, fatal, bar)
            if fatal:
                raise fatal[0]
    finally:
        if bar is not None:
            bar.stop()
    if fatal:
        raise LinkError(str(fatal[0]))
    return Results(p, results, rig.name, ", ".join(sorted({u.board["name"] for u in rig.units.values()})),
                   t_start, faults, vs)


def _run_group(clones, rig, gens, fresh, ops, oplock, fire_due, fatal, bar):
    from host.link import LinkError

    streams = []
    stop = threading.Event()
    tasks = {}
    g0 = time.monotonic()
    for jr in clones:
        pl = jr.planned
        sp = pl.spec
        u = rig.unit(pl.unit)
        h = rig.host(pl.host)
        seed = h.verifier.seed
        kind, rnd = RW[sp.rw]
        deadline = g0 + sp.runtime if sp.runtime is not None else None
        buf = random.Random(sp.randseed).randbytes(sp.bs) if not sp.verify else None
        if bar is not None and jr.name not in tasks:
            total = pl.budget * sp.numjobs if pl.budget is not None else None
            tasks[jr.name] = bar.add_task(jr.name, total=total)
        per = [None] * sp.iodepth
        if pl.budget is not None:
            per = [pl.budget // sp.iodepth + (1 if s < pl.budget % sp.iodepth else 0) for s in range(sp.iodepth)]
        for s, (lo, hi) in enumerate(pl.slices[jr.clone]):
            streams.append((u, _stream(jr, u, kind, rnd, lo, hi, per[s], deadline, buf, gens, seed, stop,
                                       random.Random(sp.randseed * 1000003 + jr.clone * 1009 + s))))
    def complete(req, data, lat, err):
        jr, written = req.tag
        pl = jr.planned
        if err is not None:
            if isinstance(err, LinkError) or not hasattr(err, "status"):
                fatal.append(err)
                stop.set()
                return False
            with jr.lock:
                jr.error = jr.error or EIO
                jr.io_errors.append(f"{req.op} vol {req.vol} lba {req.lba} x{req.count}: {err}")
            return True
        bs = req.unit.block_size
        side = jr.read if req.op == "read" else jr.write
        with jr.lock:
            jr.busy += req.busy
            side.lat_ns.append(lat)
            side.bytes += req.count * bs
            jr.last = time.monotonic()
        if req.op == "write":
            for i, g in enumerate(written):
                gens[(req.unit.name, req.vol, req.lba + i)] = g
        elif pl.spec.verify:
            _check(jr, req, data, gens, fresh, rig.host(pl.host).verifier.seed)
        with oplock:
            ops[0] += 1
            fire_due()
        if bar is not None:
            bar.advance(tasks[jr.name])
        return not stop.is_set()

    issue(streams, complete)
    end = time.monotonic()
    for jr in clones:
        # a time-based job ran until its runtime even if its last answer came just before
        rt = jr.planned.spec.runtime if jr.planned.spec.time_based else None
        jr.elapsed_s = max(1e-6, (jr.last or end) - g0, min(rt or 0, end - g0))
    # fio's verify phase and end_fsync, per clone
    for jr in clones:
        pl = jr.planned
        u = rig.unit(pl.unit)
        if pl.spec.end_fsync:
            u.flush(pl.vol)
            jr.elapsed_s = time.monotonic() - g0
        if pl.spec.verify and RW[pl.spec.rw][0] != "read" and not fatal:
            _read_back(jr, u, gens, fresh, rig.host(pl.host).verifier.seed)


def _stream(jr, u, kind, rnd, lo, hi, budget, deadline, buf, gens, seed, stop, rng):
    pl = jr.planned
    sp = pl.spec
    pos = lo
    n = 0
    mix = sp.rwmixread
    while not stop.is_set() and (budget is None or n < budget) and (deadline is None or time.monotonic() < deadline):
        op = kind if kind != "mixed" else ("read" if rng.random() * 100 < mix else "write")
        gran = rng.randrange(lo, hi) if rnd else pos
        if not rnd:
            pos = pos + 1 if pos + 1 < hi else lo
        lba = pl.start + gran * pl.bs_blocks
        count = pl.bs_blocks
        if op == "read":
            yield Request("read", u, pl.vol, lba, count, tag=(jr, None))
        elif buf is not None:
            yield Request("write", u, pl.vol, lba, count, data=buf, tag=(jr, [-1] * count))
        else:
            g = [gens.get((u.name, pl.vol, lba + i), 0) + 1 for i in range(count)]
            g = [max(1, x) for x in g]
            data = b"".join(block_content(pl.vol, lba + i, g[i], u.block_size, seed) for i in range(count))
            yield Request("write", u, pl.vol, lba, count, data=data, tag=(jr, g))
        n += 1


def _expected(unit, vol, lba, g, bs, seed, fresh):
    if g == -1 or (g == 0 and not fresh.get(unit)):
        return None          # unknown content: not checkable
    if g == 0:
        return bytes(bs)
    return block_content(vol, lba, g, bs, seed)


def _check(jr, req, data, gens, fresh, seed):
    bs = req.unit.block_size
    bad = 0
    n = 0
    mism = []
    for i in range(req.count):
        want = _expected(req.unit.name, req.vol, req.lba + i, gens.get((req.unit.name, req.vol, req.lba + i), 0), bs,
                         seed, fresh)
        if want is None:
            continue
        n += 1
        got = data[i * bs:(i + 1) * bs]
        if got != want:
            bad += 1
            mism.append(_describe(req.vol, req.lba + i, gens.get((req.unit.name, req.vol, req.lba + i), 0), got))
    with jr.lock:
        jr.checked += n
        jr.bad += bad
        jr.mismatches += mism
        if bad:
            jr.error = jr.error or EILSEQ


def _describe(vol, lba, want, got) -> str:
    from host.hostio import HDR, MAGIC

    try:
        magic, v, blk, g, _ = HDR.unpack_from(got)
    except Exception:
        magic = 0
    if magic == MAGIC:
        return f"vol {vol} lba {lba}: expected gen {want}, found block of vol {v} lba {blk} gen {g}"
    return f"vol {vol} lba {lba}: expected gen {want}, found foreign data"


def _read_back(jr, u, gens, fresh, seed):
    """The verify phase: read back every block of the clone's slices that it wrote."""
    pl = jr.planned
    chunk = max(1, min(64, pl.bs_blocks * 8))
    for lo, hi in pl.slices[jr.clone]:
        a, b = pl.start + lo * pl.bs_blocks, pl.start + hi * pl.bs_blocks
        lba = a
        while lba < b:
            n = min(chunk, b - lba)
            if any(gens.get((u.name, pl.vol, x), 0) > 0 for x in range(lba, lba + n)):
                data = u.read(pl.vol, lba, n)
                before = jr.checked
                _check(jr, Request("read", u, pl.vol, lba, n), data, gens, fresh, seed)
                jr.readback += jr.checked - before
            lba += n


# ---- the generated option tables of docs/cli.md -------------------------------------------
BEGIN = "<!-- job file options: generated by `python -m host.fio --write`; do not edit by hand -->"
END = "<!-- end of the generated job file options -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def markdown() -> str:
    out = [BEGIN, "", "| job option | default | meaning |", "|---|---|---|"]
    for k, (_, default, doc) in JOB_OPTIONS.items():
        out.append(f"| `{k}` | {f'`{default}`' if default is not None else '-'} | {doc} |")
    out += ["", f"Accepted and ignored (they change nothing here): {', '.join(f'`{k}`' for k in IGNORED)}.", "",
            "| fault option | default | meaning |", "|---|---|---|"]
    for k, (_, default, doc) in FAULT_OPTIONS.items():
        out.append(f"| `{k}` | {f'`{default}`' if default is not None else '-'} | {doc} |")
    return "\n".join(out + ["", END])


def doc_section(text: str) -> str | None:
    a, b = text.find(BEGIN), text.find(END)
    return text[a:b + len(END)] if a >= 0 and b >= 0 else None


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv[1:]:
        text = DOC.read_text()
        cur = doc_section(text)
        if cur is None:
            raise SystemExit(f"{DOC}: no generated section")
        DOC.write_text(text.replace(cur, markdown()))
        print(f"{DOC}: written")
    else:
        print(markdown())
