# Runs of blocks between a buffer and one drive (the work volumes' and work disks'
# records, E2 / E3; an E1 sub group member under E5): block by block through the DKA.
from firmware import wire
from firmware.raid import GOOD


async def _run(io, d, base, n, buf, bs):
    for i in range(n):
        st = await io(d, base + i, 1, buf[i * bs:(i + 1) * bs])
        if st not in GOOD:
            return st
    return wire.OK


def write_run(dka, d, base, n, buf, bs):
    """Blocks base..base+n-1 of drive d from buf: the first bad status, else OK (awaitable)."""
    return _run(dka.write, d, base, n, buf, bs)


def read_run(dka, d, base, n, buf, bs):
    """Blocks base..base+n-1 of drive d into buf (awaitable)."""
    return _run(dka.read, d, base, n, buf, bs)
