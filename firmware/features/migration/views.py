# The migration feature's readable tables (u.table(name) on the host).
#   mig_migrations  E2: per LV under (or after) migration: 306 / 307, the source (314 /
#                   315), the addresses fetched ahead of the pointer (staged), and table 300's entries with 302 / 305
#   mig_moves       E3 / E4: per LV being (or last) rearranged: 306 / 307 and, per source
#                   LDEV, 301 / 302 / 308 / 315 as the seed keeps them
#   mig_stats       E4: the running period's counters per LDEV, the clock
#   mig_period      E4: the last finished period: per LDEV and per RAID group
#   mig_levels      E4: the last levelling checks and the moves they started
#   mig_counters    fetches from S (host I/O served before the copy reached it)
#   mig_800         E6: 804 / 805 of every LV (from the 820s of firmware/pairtables.py;
#                   the 830 / 820 themselves: u.table("pairtables"))
from firmware import ldev, pairtables
from firmware.features.migration import fetch, move
from firmware.features.migration.feature import staged_ranges


def register(mig, reg):
    reg.table("mig_migrations", lambda u: migrations(mig))
    reg.table("mig_moves", lambda u: [move.view(mig.moves[lv]) for lv in sorted(mig.moves)])
    reg.table("mig_stats", lambda u: mig.stats.current())
    reg.table("mig_period", lambda u: mig.t.get("last"))
    reg.table("mig_levels", lambda u: mig.t["levels"])
    reg.table("mig_counters", lambda u: dict(mig.cnt))
    reg.table("mig_800", pairtables.table_800)


def migrations(mig):
    out = []
    for lv in sorted(mig.records):
        m = mig.records[lv]
        v = mig.volume(lv)
        ents = []
        for e in (ldev.entries(mig.u, v) if v is not None else []):
            a, b = e["range"]
            lo = max(a, m["start"])
            hi = min(b, m["end"])
            inside = lo <= hi
            present = inside and m["state"] == fetch.UNDER and m["pointer"] <= hi
            ents.append({"301": e["ldev"], "308": e["range"], "305": [lo, hi] if inside else None,
                         "302": "MIGRATORY COPY PRESENT" if present else "COPY ABSENT",
                         "314": m["src_unit"] if inside else None, "315": m["src_lv"] if inside else None})
        n = m["end"] - m["start"] + 1
        out.append({"lv": lv, "job": m["name"], "306": m["pointer"], "307": m["state"],
                    "314": m["src_unit"], "315": m["src_lv"], "peer": m["peer"], "area": [m["start"], m["end"]],
                    "copied": m["copied"], "fetched": m["fetched"],
                    "staged": ahead(staged_ranges(mig.bitmaps[lv], m["start"], n), m["pointer"]),
                    "entries": ents})
        out[-1].update(mig.pairs.view(m))
    return out


def ahead(ranges, p):
    """The staged addresses at or past the pointer: fetched before the copy reached them."""
    out = []
    for a, b in ranges:
        if b >= p:
            out.append([max(a, p), b])
    return out
