# FC-style port frames (seed 004): what travels between a port and a host or backup device.
# Every frame is a K_FC request on the port's channel with head wire.FC_HEAD:
#   op u8, src u8 (AL-PA of the sender), dst u8 (AL-PA of the receiver), flags u8,
#   lu u16, lba u32 (BACKUP: the destination's AL-PA, 0 = table 650's), count u16, data
# and is answered with a status (READ: and the data).  A destination sees exactly
# LOGIN, DATA..., LOGOUT from a backup's initiator task (Fig 13).
import struct

from firmware import wire

LOGIN = 1
LOGOUT = 2
READ = 3      # RD: a host's read of lu[lba:lba+count]
WRITE = 4     # WR: a host's write (data follows)
DATA = 5      # backup data from an initiator task (data follows), stored at the same LU/LBA
BACKUP = 6    # a host's backup instruction ("one of standard commands"): back up lu
# between the two controllers of a unit, on their own path (remote.py, standby.py):
COUNT = 0x10     # standby -> master: a host command its port `src` took (flags: READ / WRITE)
R_LOGIN = 0x11   # master -> standby: port `src` logs in to `dst` (Fig 13 1201 on that port)
R_DATA = 0x12    # master -> standby: port `src` sends this backup chunk to `dst` (1202)
R_LOGOUT = 0x13  # master -> standby: port `src` logs out from `dst` (1203)
OPS = {LOGIN: "LOGIN", LOGOUT: "LOGOUT", READ: "READ", WRITE: "WRITE", DATA: "DATA", BACKUP: "BACKUP",
       COUNT: "COUNT", R_LOGIN: "R_LOGIN", R_DATA: "R_DATA", R_LOGOUT: "R_LOGOUT"}

MIN_ALPA = 0x01
MAX_ALPA = 0xEF


def head(op, src, dst, lu=0, lba=0, count=0, flags=0):
    return struct.pack(wire.FC_HEAD, op, src, dst, flags, lu, lba, count)


def parse(p):
    """(op, src, dst, flags, lu, lba, count) of a frame, or None if it is too short."""
    if len(p) < wire.FC_HEAD_LEN:
        return None
    return struct.unpack_from(wire.FC_HEAD, p, 0)
