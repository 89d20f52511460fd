# RAID group geometry: where a group block lives.  RAID1: row = block on every member;
# RAID5: left-symmetric rotating parity with `chunk` blocks per member per stripe.


def locate(g, glba):
    """Group block -> (row, data member, parity member or -1)."""
    if g["level"] == 1:
        return glba, 0, -1
    n = len(g["members"])
    chunk = g["chunk"]
    stripe, within = divmod(glba, chunk * (n - 1))
    dcol, off = divmod(within, chunk)
    p = (n - 1) - stripe % n
    return stripe * chunk + off, (p + 1 + dcol) % n, p


def row_blocks(g, row):
    """RAID5: the group block held by each data member of a row, in member order
    (None at the parity member)."""
    n = len(g["members"])
    chunk = g["chunk"]
    stripe, off = divmod(row, chunk)
    p = (n - 1) - stripe % n
    out = [None] * n
    base = stripe * chunk * (n - 1) + off
    for dcol in range(n - 1):
        out[(p + 1 + dcol) % n] = base + dcol * chunk
    return out


def capacity(level, nmembers, rows, chunk):
    if level == 1:
        return rows
    return (rows // chunk) * chunk * (nmembers - 1)
