# Volume copy: the checks of a request (seed 003 E7 / E8 / E9 commands), each raising
# args.Refused with a precise status before anything changes.  Interpretations I-G5
# (volumes in use), I-G1 (track ranges, inclusive), I-8.4 (areas).
from firmware import wire
from firmware.args import Refused, is_int
from firmware.features.volcopy.state import KEYS, MAX_EXTENTS, T_AREA, volume_of


def volume(vc, cmd, key):
    vid = cmd.get(key)
    if not is_int(vid):
        raise Refused(wire.E_BAD_PARAM, "%s must be a volume number, got %r" % (key, vid))
    v = volume_of(vc.u, vid)
    if v is None:
        raise Refused(wire.E_NO_VOLUME, "no volume %d" % vid)
    return v


def two(vc, cmd):
    ov = volume(vc, cmd, "orig")
    cv = volume(vc, cmd, "copy")
    if ov["id"] == cv["id"]:
        raise Refused(wire.E_BAD_PARAM, "orig and copy are the same volume (%d)" % ov["id"])
    return ov, cv


def whole(vc, ov, cv):
    """E7 / E9: the copy of track t goes to track t over the whole volume."""
    if cv["blocks"] < ov["blocks"]:
        raise Refused(wire.E_BAD_PARAM, "copy volume %d (%d blocks) is smaller than original %d (%d blocks)"
                      % (cv["id"], cv["blocks"], ov["id"], ov["blocks"]))
    n = vc.tracks(ov)
    if n > vc.cfg["max_tracks"]:
        raise Refused(wire.E_BAD_PARAM, "volume %d has %d tracks; bitmaps hold at most %d (max_tracks)"
                      % (ov["id"], n, vc.cfg["max_tracks"]))
    return n


def ranges(cmd, key, ntracks, what):
    """cmd[key] as [(start, end)] track ranges inside tracks 0..ntracks-1."""
    r = cmd.get(key)
    if not isinstance(r, list) or not r or len(r) > MAX_EXTENTS:
        raise Refused(wire.E_BAD_PARAM, "%s must be a list of 1..%d [start, end] track ranges"
                      % (key, MAX_EXTENTS))
    out = []
    for x in r:
        if not isinstance(x, list) or len(x) != 2 or not is_int(x[0]) or not is_int(x[1]):
            raise Refused(wire.E_BAD_PARAM, "%s: %r is not a [start, end] track range" % (key, x))
        a, b = x
        if a < 0 or b < a or b >= ntracks:
            raise Refused(wire.E_BAD_PARAM, "%s: [%d, %d] is outside %s (tracks 0..%d)"
                          % (key, a, b, what, ntracks - 1))
        out.append((a, b))
    return out


def not_in_use(vc, orig, copy, tbl, areas=None):
    """I-G5: a copy volume belongs to no other pair (E8: areas of one source on one
    destination may share it if they do not overlap); an original is no copy."""
    for stbl, j, s in vc.used():
        where = "table %d slot %d: %d -> %d" % (stbl, j, s["orig"], s["copy"])
        if copy == s["copy"]:
            if tbl == T_AREA and stbl == T_AREA and s["orig"] == orig:
                for a, b in areas:
                    if a <= s["end"] and s["start"] <= b:
                        raise Refused(wire.E_STATE, "area [%d, %d] overlaps area [%d, %d] on volume %d (%s)"
                                      % (a, b, s["start"], s["end"], copy, where))
                continue
            raise Refused(wire.E_STATE, "volume %d is already the copy of a pair (%s)" % (copy, where))
        if copy == s["orig"]:
            raise Refused(wire.E_STATE, "volume %d is already the original of a pair (%s)" % (copy, where))
        if orig == s["copy"]:
            raise Refused(wire.E_STATE, "volume %d is the copy of a pair (%s); it cannot be an original"
                          % (orig, where))


def free_slots(vc, tbl, n):
    slots = vc.t[KEYS[tbl]]
    free = [i for i in range(len(slots)) if not slots[i]["use"]]
    if len(free) < n:
        raise Refused(wire.E_STATE, "table %d: %d free slot(s) of %d, %d needed"
                      % (tbl, len(free), len(slots), n))
    return free[:n]


def find(vc, tbl, cmd):
    """(slot, slot dict) of the pair orig -> copy (E8: and the area start, end)."""
    ov, cv = two(vc, cmd)
    want = None
    if tbl == T_AREA:
        a, b = cmd.get("start"), cmd.get("end")
        if not is_int(a) or not is_int(b):
            raise Refused(wire.E_BAD_PARAM, "start and end (tracks) select the area")
        want = (a, b)
    slots = vc.t[KEYS[tbl]]
    for i in range(len(slots)):
        s = slots[i]
        if s["use"] and s["orig"] == ov["id"] and s["copy"] == cv["id"]:
            if want is None or (s["start"], s["end"]) == want:
                return i, s
    extra = " area [%d, %d]" % want if want else ""
    raise Refused(wire.E_BAD_PARAM, "no pair %d -> %d%s in table %d" % (ov["id"], cv["id"], extra, tbl))
