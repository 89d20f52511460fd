# The board's serial link: the only port-specific module of the firmware.
#   MicroPython (unix emulator and real boards): the console stream (stdin/stdout),
#   which is the USB CDC port on a board and the pty on the emulator.
#   CPython (CPython board, in-process board): a file descriptor pair driven by asyncio.
import sys

try:
    import micropython

    MICROPYTHON = True
except ImportError:
    micropython = None
    MICROPYTHON = False

import asyncio


class Port:
    """async readinto(buf) -> n (0 at end of stream: the host went away);  write(mv)
    sends every byte, or drops them once the host has gone (`closed`).

    The host going away: the other end of the pty closed (the harness exited, or was
    killed).  The pty then reads EIO, and a write that finds the pty full waits for
    room that never comes (poll answers POLLHUP at once): the port is closed, writes
    are dropped and the next read returns 0, so the unit saves its shared memory and
    the board exits instead of spinning on a dead port."""

    def __init__(self, fd_in=None, fd_out=None):
        self.closed = False
        self._poll = None
        if MICROPYTHON:
            micropython.kbd_intr(-1)  # 0x03 is payload, not Ctrl-C
            self._in = sys.stdin.buffer
            self._out = sys.stdout.buffer
            self._reader = asyncio.StreamReader(self._in)
        else:
            import os

            self._os = os
            self.fd_in = 0 if fd_in is None else fd_in
            self.fd_out = 1 if fd_out is None else fd_out
            os.set_blocking(self.fd_in, False)
            self._ready = None      # the future readinto waits on
            self._watch = None      # the loop watching fd_in (add_reader kept between reads)

    def _wait_room(self, out):
        """Wait (at most 100 ms) until the output takes more; False if it never will."""
        import select

        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(out, select.POLLOUT)
        for ev in self._poll.poll(100):
            if ev[1] & (select.POLLHUP | select.POLLERR):
                self.closed = True
                return False
        return True

    if MICROPYTHON:

        async def readinto(self, buf):
            if self.closed:
                return 0
            try:
                return await self._reader.readinto(buf)
            except OSError:
                self.closed = True
                return 0  # EIO: the pty's other end closed

        def write(self, mv):
            # The emulator's console fd is non-blocking (so reads return what has
            # arrived): a full pty answers None, and we wait until it drains.
            out = self._out
            n = len(mv)
            done = 0
            while done < n and not self.closed:
                try:
                    k = out.write(mv[done:])
                except OSError:
                    self.closed = True
                    return
                if k:
                    done += k
                elif not self._wait_room(out):
                    return

    else:

        async def readinto(self, buf):
            os = self._os
            while not self.closed:
                try:
                    return os.readv(self.fd_in, [buf])
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed = True
                    return 0  # peer closed (EIO on a pty whose other side went away)
                loop = asyncio.get_running_loop()
                if self._watch is None:     # watched until it is readable with nobody waiting
                    self._watch = loop
                    loop.add_reader(self.fd_in, self._readable)
                fut = self._ready = loop.create_future()
                try:
                    await fut
                finally:
                    self._ready = None
            return 0

        def _readable(self):
            fut = self._ready
            if fut is not None and not fut.done():
                fut.set_result(None)
            elif self._watch is not None:   # nobody waits: no wake-ups while the board is busy
                self._watch.remove_reader(self.fd_in)
                self._watch = None

        def write(self, mv):
            os = self._os
            mv = memoryview(mv)
            while len(mv) and not self.closed:
                try:
                    k = os.write(self.fd_out, mv)
                    mv = mv[k:]
                except BlockingIOError:
                    if not self._wait_room(self.fd_out):
                        return
                except OSError:
                    self.closed = True   # EPIPE, EIO: the host went away
                    return
