# Management (PC/WS 3000) commands of the online backup (seed 004).  Every command checks
# all its fields before it changes anything.
from firmware import wire
from firmware.args import Refused, is_int, need_bool, need_choice, need_int, need_list
from firmware.features.online_backup import clock
from firmware.features.online_backup.state import ROLES, check_alpa, check_priority


def add(reg, ob):
    async def backup(u, cmd):
        lu = need_int(cmd, "lu", 0, 65535)
        dest = need_int(cmd, "dest", 0, 0xEF, default=0)
        port = cmd.get("port")
        if port is not None and not isinstance(port, str):
            raise Refused("port must be a port name, got %r" % (port,))
        t = ob.backup.request(lu, dest, "mgmt", port, need_bool(cmd, "paused"))
        return wire.OK, {"t630": t, "job": "backup"}

    async def duplex(u, cmd):
        ob.pairs.duplex(need_int(cmd, "main", 0, 65535), need_int(cmd, "sub", 0, 65535), "mgmt",
                        need_bool(cmd, "paused"))
        return wire.OK, {"t630": ob.sm["t630"], "job": "backup" if ob.sm["t630"]["parallel"] else "copy"}

    async def split(u, cmd):
        ob.pairs.split(need_int(cmd, "main", 0, 65535), need_int(cmd, "sub", 0, 65535))
        return wire.OK, {"pairs": ob.sm["pairs"]}

    async def roles(u, cmd):
        r = cmd.get("roles")
        if not isinstance(r, dict) or not r:
            raise Refused("roles must be a table {port: role}")
        for k in r:
            if k not in ob.sm["t640"]:
                raise Refused("no port %r (ports: %s)" % (k, ", ".join(sorted(ob.sm["t640"]))))
            need_choice(r, k, ROLES)
        ob.sm["t640"].update(r)
        u.sm.save()
        return wire.OK, {"t640": ob.sm["t640"]}

    async def allow(u, cmd):
        lst = need_list(cmd, "alpas")
        for a in lst:
            check_alpa(a, "allow entry")
            if any(p.alpa == a for p in ob.ports + ob.remote):
                raise Refused("0x%02x is a port of this unit" % a)
        ob.sm["allow"] = list(lst)
        u.sm.save()
        return wire.OK, {"allow": lst}

    async def timing(u, cmd):
        par = need_bool(cmd, "parallel", ob.sm["t650"]["parallel"])
        dest = cmd.get("dest", ob.sm["t650"]["dest"])
        if dest != 0:
            check_alpa(dest, "dest")
        ob.sm["t650"] = {"parallel": par, "dest": dest}
        u.sm.save()
        return wire.OK, {"t650": ob.sm["t650"]}

    async def timer(u, cmd):
        e = clock.entry(ob, cmd)
        ob.sm["t660"].append(e)
        u.sm.save()
        return wire.OK, {"t660": ob.sm["t660"]}

    async def priority(u, cmd):
        p = {}
        for k in ("mode", "chunk", "slice"):
            if k in cmd:
                p[k] = cmd[k]
        if "chunk" in p and is_int(p["chunk"]) and p["chunk"] == 0:
            raise Refused("chunk must be at least 1 block (a zero chunk never moves the backup)")
        new = dict(ob.sm["t670"])
        new.update(p)
        ob.sm["t670"] = check_priority(new)
        u.sm.save()
        return wire.OK, {"t670": ob.sm["t670"]}

    async def tick(u, cmd):
        await clock.tick(ob, need_int(cmd, "seconds", 0, 365 * clock.DAY))
        return wire.OK, {"clock": ob.sm["clock"]}

    async def port(u, cmd):
        p = ob.port(cmd.get("port"))
        if p is None:
            raise Refused("no port %r" % (cmd.get("port"),))
        up = need_bool(cmd, "up", True)
        if up:
            p.up = True
        else:
            p.fail()
        return wire.OK, {"port": p.info()}

    for name, fn in (("ob_backup", backup), ("ob_duplex", duplex), ("ob_split", split), ("ob_roles", roles),
                     ("ob_allow", allow), ("ob_timing", timing), ("ob_timer", timer), ("ob_priority", priority),
                     ("ob_tick", tick), ("ob_port", port)):
        reg.op(name, fn)
