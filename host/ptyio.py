"""Direct reads and non-blocking writes on a board's pty, for host/link.py.

pyserial's read waits for the count it is given (a select, a read of one byte, an
ioctl for what is waiting, a select and a read of the rest); its write selects for room
after every write.  On a pty the link owns, one select and one read take everything that
has arrived, and a write on the port's non-blocking descriptor takes what fits at once.
Under a FaultyPort (host/linkfaults.py) its faults still apply: bytes read go through
its filter, and writes go straight to the pty only while no fault is being injected.
Anything that is not a pyserial port (a socket, a farm place) keeps its own read and
write.
"""
import os
import select

READ_MAX = 65536      # bytes taken from the pty per read at most


def _pty(port):
    """(the pyserial port under any wrapper, its descriptor), or (None, None)."""
    inner = getattr(port, "ser", port)
    fd = getattr(inner, "fd", None)
    if type(inner).__module__.startswith("serial.serialposix") and isinstance(fd, int):
        return inner, fd
    return None, None


def reader(port):
    """(read, done): read() returns the bytes that have arrived (b"" after 50 ms of
    nothing); done() ends it.  On a pty, read() works on a copy of the port's descriptor
    that done() closes, so a close() of the port meanwhile can never leave it reading a
    descriptor number the process has reused."""
    inner, fd = _pty(port)
    if inner is None:
        return (lambda: port.read(port.in_waiting or 1)), (lambda: None)
    rfd = os.dup(fd)
    faults = port.filter_rx if inner is not port else None

    def read():
        if not select.select([rfd], [], [], 0.05)[0]:
            return faults(b"") if faults else b""     # (delayed frames fall due)
        data = os.read(rfd, READ_MAX)
        if not data:   # readable yet nothing: the board's end went away
            raise OSError("device reports readiness to read but returned no data")
        return faults(data) if faults else data
    return read, (lambda: os.close(rfd))


def write_now(port, data):
    """Write what the pty takes without waiting and return the count; None if the port
    is not a pty of its own (or a fault is being injected): the caller writes it."""
    inner, fd = _pty(port)
    if inner is None or (inner is not port and not port.tx_plain()):
        return None
    try:
        return os.write(fd, data)     # pyserial opens the port non-blocking
    except BlockingIOError:
        return 0
