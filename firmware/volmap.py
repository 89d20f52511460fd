# The volume map: the one reader of where a volume's blocks live.  A volume is a list
# of extents [vstart, count, group id, group block]: volume blocks vstart..vstart+count-1
# are group blocks gstart..gstart+count-1 of that group.  The configuration may give a
# volume as one range ("group", "start", "blocks") or as "extents"; SM keeps extents.
GID_BITS = 8                    # cache keys: group block << GID_BITS | group id
MAX_GROUPS = 1 << GID_BITS


def key_of(gid, glba):
    return (glba << GID_BITS) | gid


def key_gid(key):
    return key & (MAX_GROUPS - 1)


def key_glba(key):
    return key >> GID_BITS


def segments(v, lba, count):
    """[(gid, glba, offset in the request, n)] covering volume blocks lba..lba+count-1."""
    out = []
    end = lba + count
    for e in v["extents"]:
        a = e[0]
        b = a + e[1]
        if b <= lba or a >= end:
            continue
        s = lba if lba > a else a
        t = end if end < b else b
        out.append((e[2], e[3] + s - a, s - lba, t - s))
    return out


def locate(v, lba):
    """(gid, glba) of volume block lba."""
    for e in v["extents"]:
        if e[0] <= lba < e[0] + e[1]:
            return e[2], e[3] + lba - e[0]
    raise ValueError("volume %d has no block %d" % (v["id"], lba))


def groups_of(v):
    out = []
    for e in v["extents"]:
        if e[2] not in out:
            out.append(e[2])
    return out


def on_group(v, gid):
    for e in v["extents"]:
        if e[2] == gid:
            return True
    return False


def contiguous(v):
    """(gid, gstart) of a volume held in one extent, else None (features that address
    a volume as one group range refuse the others)."""
    ex = v["extents"]
    if len(ex) == 1:
        return ex[0][2], ex[0][3]
    return None


def volume_at(vols, gid, glba):
    """(volume, lba) holding group block glba of group gid, or (None, -1)."""
    for v in vols:
        for e in v["extents"]:
            if e[2] == gid and e[3] <= glba < e[3] + e[1]:
                return v, e[0] + glba - e[3]
    return None, -1


def build(vc, groups, vols):
    """A configured volume -> its SM entry {"id", "blocks", "extents"} (raises ValueError).
    `vols` are the entries built so far (overlaps are refused)."""
    from firmware.args import Refused, need_int

    vid = need_int(vc, "id", 0, 65535)
    if any(v["id"] == vid for v in vols):
        raise Refused("volume %d defined twice" % vid)
    if "extents" in vc:
        given = vc["extents"]
        if not isinstance(given, list) or not given:
            raise Refused("volume %d: extents must be a non-empty list of {group, start, blocks}" % vid)
    else:
        given = [vc]
    ext = []
    at = 0
    for x in given:
        gid = need_int(x, "group", 0, MAX_GROUPS - 1)
        g = [y for y in groups if y["id"] == gid]
        if not g:
            raise Refused("volume %d: no group %d" % (vid, gid))
        start = need_int(x, "start", 0, default=0)
        n = need_int(x, "blocks", 1)
        if start + n > g[0]["capacity"]:
            raise Refused("volume %d: blocks [%d, %d) exceed group %d's %d blocks"
                          % (vid, start, start + n, gid, g[0]["capacity"]))
        for o in ext:
            if o[2] == gid and start < o[3] + o[1] and o[3] < start + n:
                raise Refused("volume %d: two of its extents overlap on group %d" % (vid, gid))
        ext.append([at, n, gid, start])
        at += n
    if "extents" in vc and "blocks" in vc and vc["blocks"] != at:
        raise Refused("volume %d: blocks %r differ from its extents' %d" % (vid, vc["blocks"], at))
    for v in vols:
        for o in v["extents"]:
            for e in ext:
                if o[2] == e[2] and e[3] < o[3] + o[1] and o[3] < e[3] + e[1]:
                    raise Refused("volume %d overlaps volume %d" % (vid, v["id"]))
    return {"id": vid, "blocks": at, "extents": ext}
