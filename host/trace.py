"""Traces: every frame on every link of a rig, as JSON Lines; replay; timeline export;
and the differential runtime check (the same scenario on MicroPython and on CPython).

A trace file starts with a header line (the rig description, each unit's board), then
one line per frame, in the order the host saw them:

    {"t": 0.012345, "unit": "u0", "dir": "tx", "ch": "host0", "kind": "WRITE", "seq": 7,
     "len": 4104, "digest": "9f0c...", "data": "<base64>"}

`dir` is "tx" (host to board) or "rx" (board to host); `t` is seconds since recording
began; `digest` is a BLAKE2b-64 of the payload; responses carry `status`.  The payload
itself (`data`, base64) is kept for what a replay needs: the host's own requests
(host ports, management) and the management replies (small JSON).  Harness actions
that are not frames (drive faults injected, board restarts) are lines with "event";
so are the firmware's trace events (tracing on: `{"event": "trace", "text": "mirror
JOB1 701 4 2 1"}`, after the LOG frame that carried them).
A frame the fabric carries between two units is recorded once, on the link it left.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import threading
import time
from pathlib import Path

from firmware import wire
from host.boards import load_board
from host.rig import Rig

FORMAT = "storlab-trace"
VERSION = 1
# tables that describe the unit's state (statistics and implementation facts left out)
STATE_TABLES = ("config", "drives", "groups", "volumes", "jobs")
# management replies that name the implementation (MicroPython or CPython, its heap)
IMPL_OPS = ("info",)
IMPL_TABLES = ("mem", "link", "boot", "cache")

_KIND_BY_NAME = {v: k for k, v in wire.KINDS}


def digest(payload) -> str:
    return hashlib.blake2b(bytes(payload), digest_size=8).hexdigest()


def kind_number(name: str) -> int:
    base, resp = (name[:-5], wire.RESP) if name.endswith(".resp") else (name, 0)
    return (_KIND_BY_NAME[base] if base in _KIND_BY_NAME else int(base, 16)) | resp


def channel_number(name: str) -> int:
    for prefix, base in (("host", wire.CH_HOST), ("drive", wire.CH_DRIVE), ("peer", wire.CH_PEER)):
        if name.startswith(prefix):
            return base + int(name[len(prefix):])
    fixed = {"mgmt": wire.CH_MGMT, "log": wire.CH_LOG, "link": wire.CH_LINK}
    return fixed[name] if name in fixed else int(name[2:], 16)


def host_originated(ch: int) -> bool:
    """Channels on which the host makes the requests (host ports, management)."""
    return ch < wire.CH_DRIVE or ch == wire.CH_MGMT


class Recorder:
    """Records every frame of every unit's link into a JSON Lines file.

    Attach it before rig.start() to have the boot (HELLO, configure) in the trace;
    it follows restarts.  payloads: "requests" (default; see module doc), "all", "none".
    """

    def __init__(self, rig: Rig, path: str | Path, payloads: str = "requests"):
        if payloads not in ("requests", "all", "none"):
            raise ValueError("payloads must be requests, all or none")
        self.rig = rig
        self.path = Path(path)
        self.payloads = payloads
        self.lock = threading.Lock()
        self.frames = 0
        self.f = open(self.path, "w")
        self.t0 = time.monotonic()
        units = {}
        for u in rig.units.values():
            units[u.name] = {"board": u.board.get("name"), "started": u.link is not None}
        self._write({"format": FORMAT, "version": VERSION, "rig": rig.desc, "units": units,
                     "wall": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self._saved = []
        for u in rig.units.values():
            self._saved.append((u, u.on_record))
            u.on_record = self._frame
            if u.link is not None:
                u.link.on_record = self._frame
            u.inject = self._wrap(u, "inject", u.inject)
            u.restart = self._wrap(u, "restart", u.restart)

    def _write(self, d: dict):
        self.f.write(json.dumps(d, separators=(",", ":")) + "\n")

    def _frame(self, link, d: str, ch: int, kind: int, seq: int, payload):
        rec = {"t": 0.0, "unit": link.name, "dir": d, "ch": wire.channel_name(ch), "kind": wire.kind_name(kind),
               "seq": seq, "len": len(payload), "digest": digest(payload)}
        if kind & wire.RESP and len(payload):
            rec["status"] = wire.status_name(payload[0])
        keep = self.payloads == "all" or (
            self.payloads == "requests" and (ch == wire.CH_MGMT or (d == "tx" and host_originated(ch)
                                                                     and not kind & wire.RESP)))
        if keep:
            rec["data"] = base64.b64encode(bytes(payload)).decode()
        with self.lock:
            if self.f.closed:
                return
            rec["t"] = round(time.monotonic() - self.t0, 6)
            self.frames += 1
            self._write(rec)
            if ch == wire.CH_LOG and kind == wire.K_LOG and bytes(payload[:2]) == b"T ":
                # a firmware trace event (u.trace, e.g. a job's step): readable as text
                self._write({"t": rec["t"], "unit": link.name, "event": "trace",
                             "text": bytes(payload[2:]).decode(errors="replace")})

    def event(self, unit: str, name: str, **args):
        with self.lock:
            if not self.f.closed:
                self._write({"t": round(time.monotonic() - self.t0, 6), "unit": unit, "event": name, **args})

    def end(self, state: dict):
        """Write the rig's final state (state_of) into the trace, for a later replay to
        compare against; then stop recording."""
        self.event("", "end", state=state)
        self.close()

    def _wrap(self, u, name, fn):
        def wrapped(*a, **kw):
            if name == "inject":
                names = ("drive", "fault", "start", "count", "seconds")
                self.event(u.name, name, **dict(zip(names, a)), **kw)
            else:
                self.event(u.name, name)
            return fn(*a, **kw)
        return wrapped

    def close(self):
        for u, prev in self._saved:
            u.on_record = prev
            if u.link is not None:
                u.link.on_record = prev
            for attr in ("inject", "restart"):
                u.__dict__.pop(attr, None)
        self._saved = []
        with self.lock:
            if not self.f.closed:
                self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read(path: str | Path) -> tuple[dict, list[dict]]:
    with open(path) as f:
        header = json.loads(f.readline())
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: not a storlab trace")
        return header, [json.loads(line) for line in f if line.strip()]


def _responses(records: list[dict]) -> dict[int, dict]:
    """Index of each request record -> its response record (same unit, channel, seq)."""
    open_: dict[tuple, int] = {}
    out: dict[int, dict] = {}
    for i, r in enumerate(records):
        if "event" in r:
            continue
        resp = r["kind"].endswith(".resp")
        key = (r["unit"], r["ch"], r["seq"], r["kind"].removesuffix(".resp"))
        if not resp:
            open_[key + (r["dir"],)] = i
        else:
            want = key + ("rx" if r["dir"] == "tx" else "tx",)
            j = open_.pop(want, None)
            if j is not None:
                out[j] = r
    return out


def _mgmt(rec: dict) -> dict:
    try:
        return json.loads(base64.b64decode(rec["data"]))
    except (KeyError, ValueError):
        return {}


def _reply(rec: dict | None):
    if not rec or "data" not in rec:
        return None
    raw = base64.b64decode(rec["data"])
    try:
        return json.loads(raw[1:]) if len(raw) > 1 else {}
    except ValueError:
        return None


def _json_digest(rec: dict | None) -> str | None:
    """A management reply's digest as a JSON value: key order left out (MicroPython's
    dicts do not keep insertion order, so the same reply can come with its keys in
    another order)."""
    if not rec or "data" not in rec:
        return None
    raw = base64.b64decode(rec["data"])
    try:
        value = json.loads(raw[1:]) if len(raw) > 1 else None
    except ValueError:
        return None
    return digest(raw[:1] + json.dumps(value, sort_keys=True).encode())


def _behind(now: dict, then: dict) -> bool:
    """True while a replayed job is behind where the recorded run saw it."""
    if then.get("state") in ("done", "failed"):
        return now.get("state") != then.get("state")
    return now.get("state") not in ("done", "failed") and now.get("pointer", 0) < then.get("pointer", 0)


def replay(path: str | Path, state_dir: str | Path | None = None, board=None, timeout: float = 60.0,
           progress=None) -> dict:
    """Run a trace's host requests and harness events, in order, against a fresh rig.

    Requests are sent one at a time in the order they were recorded (a recording
    with overlapping requests is replayed in their send order).  A job-progress poll
    is a synchronisation point: the replay waits until the job is at least where the
    recorded run saw it, so later requests meet the same background state.
    progress(i), if given, is called with each record's index as the replay passes it.
    Returns {"rig": the started Rig (caller closes it), "requests", "same", "differ"}.
    """
    header, records = read(path)
    desc = copy.deepcopy(header["rig"])
    for ud in desc.get("unit", []):
        info = header["units"].get(ud["name"], {})
        if board is None and info.get("board"):
            ud["board"] = info["board"]
    rig = Rig(desc, state_dir=state_dir, board=board)
    try:
        for name, info in header["units"].items():
            # a recording that began after the boot has no configure request in it
            rig.unit(name).start(configure=bool(info.get("started")))
        resp = _responses(records)
        n = same = 0
        differ = []
        for i, r in enumerate(records):
            if progress and (i % 64 == 0 or i == len(records) - 1):
                progress(i)
            if "event" in r:
                if r["event"] == "end":
                    continue
                u = rig.unit(r["unit"])
                if r["event"] == "inject":
                    u.inject(**{k: v for k, v in r.items() if k in ("drive", "fault", "start", "count", "seconds")})
                elif r["event"] == "restart":
                    u.restart()
                continue
            ch = channel_number(r["ch"])
            kind = kind_number(r["kind"])
            if r["dir"] != "tx" or kind & wire.RESP or not host_originated(ch) or "data" not in r:
                continue
            u = rig.unit(r["unit"])
            payload = base64.b64decode(r["data"])
            want = resp.get(i)
            cmd = _mgmt(r) if ch == wire.CH_MGMT else {}
            end = time.monotonic() + timeout
            while True:
                st, data = u.link.request(ch, kind, payload, timeout)
                then = _reply(want)
                if not (cmd.get("op") == "job" and cmd.get("action", "info") == "info" and then
                        and st == wire.OK and time.monotonic() < end
                        and _behind(json.loads(data)["job"], then.get("job", {}))):
                    break
                time.sleep(0.01)
            n += 1
            got = {"data": base64.b64encode(bytes([st]) + data).decode()}
            if want is not None and (digest(bytes([st]) + data) == want["digest"] or (
                    ch == wire.CH_MGMT and _json_digest(got) == _json_digest(want))):
                same += 1
            elif want is not None:
                differ.append({"index": i, "unit": r["unit"], "ch": r["ch"], "kind": r["kind"],
                               "recorded": want.get("status"), "replayed": wire.status_name(st)})
        return {"rig": rig, "requests": n, "same": same, "differ": differ}
    except BaseException:
        rig.close()
        raise


def first_difference(recorded, replayed, path: str = "") -> str | None:
    """The first place two states (state_of) differ, in words; None if they are equal."""
    if recorded == replayed:
        return None
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for k in list(recorded) + [k for k in replayed if k not in recorded]:
            if k not in replayed:
                return f"{path}{k}: recorded {recorded[k]!r}, missing from the replay"
            if k not in recorded:
                return f"{path}{k}: not in the recording, replayed {replayed[k]!r}"
            if recorded[k] != replayed[k]:
                if path.endswith("drives.") or (k == "drives" and isinstance(recorded[k], list)
                                                 and recorded[k] and isinstance(recorded[k][0], str)):
                    i = next(i for i, (x, y) in enumerate(zip(recorded[k], replayed[k])) if x != y)
                    return (f"{path}drive {i}: contents differ (sha256 {recorded[k][i][:12]}... recorded, "
                            f"{replayed[k][i][:12]}... replayed)")
                return first_difference(recorded[k], replayed[k], f"{path}{k}.")
    if isinstance(recorded, list) and isinstance(replayed, list):
        for i, (x, y) in enumerate(zip(recorded, replayed)):
            if x != y:
                return first_difference(x, y, f"{path.rstrip('.')}[{i}].")
        return f"{path.rstrip('.')}: {len(recorded)} entries recorded, {len(replayed)} replayed"
    return f"{path.rstrip('.')}: recorded {recorded!r}, replayed {replayed!r}"


def state_of(rig: Rig) -> dict:
    """What a replay (or the other implementation) must reproduce: every drive's bytes
    and the state tables of every unit."""
    out = {}
    for name, u in rig.units.items():
        tables = {}
        have = u.mgmt("info")["tables"]
        for t in STATE_TABLES:
            if t not in have:
                continue
            v = u.table(t)
            if t == "drives":
                v = [{k: x for k, x in d.items() if k != "io"} for d in v]
            elif t == "jobs":
                v = [{k: x for k, x in j.items() if k != "budget"} for j in v]
            tables[t] = v
        out[name] = {"drives": [hashlib.sha256(d.image()).hexdigest() for d in u.drives], "tables": tables}
    return out


# ---- timeline export --------------------------------------------------------------
def _cat(ch: int) -> str:
    if ch < wire.CH_DRIVE:
        return "host"
    if ch < wire.CH_PEER:
        return "drive"
    if ch < wire.CH_MGMT:
        return "peer"
    return {wire.CH_MGMT: "mgmt", wire.CH_LOG: "log"}.get(ch, "link")


def to_chrome(path: str | Path) -> dict:
    """The trace as Chrome trace-event JSON (chrome://tracing, ui.perfetto.dev): a
    process per unit, a track per channel, a slice from each request to its response."""
    header, records = read(path)
    units = list(header["units"])
    pids = {u: i + 1 for i, u in enumerate(units)}
    ev: list[dict] = []
    for u, pid in pids.items():
        ev.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": f"unit {u}"}})
    tracks = set()
    resp = _responses(records)
    paired = {id(r) for r in resp.values()}
    for i, r in enumerate(records):
        pid = pids.get(r["unit"], 0)
        ts = r["t"] * 1e6
        if "event" in r:
            if r["event"] == "end":
                continue
            args = {k: v for k, v in r.items() if k not in ("t", "unit", "event")}
            ev.append({"ph": "i", "s": "p", "name": r["event"], "cat": "harness", "pid": pid, "tid": 0,
                       "ts": ts, "args": args})
            continue
        ch = channel_number(r["ch"])
        if (pid, ch) not in tracks:
            tracks.add((pid, ch))
            ev.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": ch + 1, "args": {"name": r["ch"]}})
        if id(r) in paired:
            continue
        args = {"seq": r["seq"], "len": r["len"], "dir": r["dir"], "digest": r["digest"]}
        if i in resp:
            rr = resp[i]
            args.update(status=rr.get("status"), resp_len=rr["len"])
            ev.append({"ph": "X", "name": r["kind"], "cat": _cat(ch), "pid": pid, "tid": ch + 1, "ts": ts,
                       "dur": max(0.0, rr["t"] * 1e6 - ts), "args": args})
        else:
            if "status" in r:
                args["status"] = r["status"]
            ev.append({"ph": "i", "s": "t", "name": r["kind"], "cat": _cat(ch), "pid": pid, "tid": ch + 1,
                       "ts": ts, "args": args})
    return {"traceEvents": ev, "displayTimeUnit": "ms",
            "otherData": {"rig": header["rig"].get("rig", {}).get("name", ""), "source": FORMAT}}


def export_chrome(path: str | Path, out: str | Path) -> int:
    doc = to_chrome(path)
    Path(out).write_text(json.dumps(doc))
    return len(doc["traceEvents"])


# ---- differential runtime check -------------------------------------------------
def channel_sequences(records: list[dict]) -> dict[str, list[tuple]]:
    """Per unit and channel, the conversation as a list of
    (kind, request digest, response status, response digest), in request order.

    Why per channel and not the global interleaving: each channel is one conversation
    (a drive sees its own command stream, a host port its own), and its order is what
    the firmware decides.  How conversations on different channels interleave in time
    is decided by thread and task scheduling on both sides, which differs between
    CPython and MicroPython (and from run to run) without any difference in behaviour.
    Retransmitted copies (same seq, same bytes) count once; identical consecutive
    management requests (a host polling a job) count once, with the last reply; replies
    that name the implementation (info, heap and link statistics) and HELLO are left out.
    """
    resp = _responses(records)
    out: dict[str, list[tuple]] = {}
    seen: dict[str, list] = {}
    for i, r in enumerate(records):
        if "event" in r or r["kind"].endswith(".resp"):
            continue
        if r["ch"] == "link":
            continue
        key = f"{r['unit']}/{r['ch']}"
        rr = resp.get(i)
        ident = (r["dir"], r["seq"], r["digest"])
        recent = seen.setdefault(key, [])
        if ident in recent:
            continue    # a retransmission
        recent.append(ident)
        del recent[:-64]
        status, rdig = (rr.get("status"), rr["digest"]) if rr else (None, None)
        if r["ch"] == "mgmt":
            rdig = _json_digest(rr) or rdig
            cmd = _mgmt(r)
            if cmd.get("op") in IMPL_OPS or (cmd.get("op") == "table" and cmd.get("name") in IMPL_TABLES):
                rdig = "impl"
        item = (r["kind"], r["digest"], status, rdig)
        seq = out.setdefault(key, [])
        if r["ch"] == "mgmt" and seq and seq[-1][:2] == item[:2]:
            seq[-1] = item
        else:
            seq.append(item)
    return out


def differential_board(name: str, kind: str) -> dict:
    """Board `name`'s limits under implementation `kind` (emulator: MicroPython,
    cpython: CPython), in differential mode: the destage timer is parked, link
    retries are slow and one row is worked on at a time (raid_sets 0: rows in flight
    together reach a drive in the order the scheduler runs them, which the load of the
    machine decides), so every frame the firmware sends is caused by one it received,
    in one order."""
    b = load_board(name)
    b.pop("deploy", None)
    b.update(kind=kind, destage_ms=3_600_000, retry_ms=10_000, raid_sets=0)
    return b


def differential_rig(desc: dict) -> dict:
    d = copy.deepcopy(desc)
    for u in d.get("unit", []):
        u["cache_mode"] = "write-through"   # destage inside the WRITE, not on a timer
        u.pop("board", None)
    return d


def differential(desc: dict, scenario, state_dir: str | Path, boards: dict[str, dict] | None = None) -> dict:
    """Run scenario(rig) on the same rig under each board (default: the emulator's limits
    on MicroPython and on CPython), recording a trace of each; compare the per-channel
    frame sequences, the drive contents and the state tables of the first two.
    Returns a report: "equal", "channel_diffs", "same_state", "runs"."""
    state_dir = Path(state_dir)
    boards = boards or {"micropython": differential_board("emulator", "emulator"),
                        "cpython": differential_board("emulator", "cpython")}
    desc = differential_rig(desc)
    runs = {}
    for label, bd in boards.items():
        tpath = state_dir / f"{label}.jsonl"
        rig = Rig(desc, state_dir=state_dir / label, board=bd)
        t0 = time.monotonic()
        rec = Recorder(rig, tpath)
        try:
            rig.start()
            result = scenario(rig)
            rec.close()
            state = state_of(rig)
            impl = {n: u.hello.get("impl") for n, u in rig.units.items()}
        finally:
            rec.close()
            rig.close()
        _, records = read(tpath)
        runs[label] = {"trace": str(tpath), "result": result, "state": state, "impl": impl,
                       "frames": rec.frames, "seconds": time.monotonic() - t0,
                       "channels": channel_sequences(records)}
    (la, a), (lb, b) = list(runs.items())[:2]
    diffs = []
    for key in sorted(set(a["channels"]) | set(b["channels"])):
        x, y = a["channels"].get(key, []), b["channels"].get(key, [])
        if x != y:
            k = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
            diffs.append({"channel": key, "lengths": (len(x), len(y)), "first": k,
                          la: x[k] if k < len(x) else None, lb: y[k] if k < len(y) else None})
    same_state = a["state"] == b["state"]
    return {"equal": not diffs and same_state, "channel_diffs": diffs, "same_state": same_state,
            "channels": len(a["channels"]),
            "compared": sum(len(v) for v in a["channels"].values()), "runs": runs}
