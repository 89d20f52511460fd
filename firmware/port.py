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
    """async readinto(buf) -> n (0 at end of stream);  write(mv) sends every byte."""

    def __init__(self, fd_in=None, fd_out=None):
        if MICROPYTHON:
            micropython.kbd_intr(-1)  # 0x03 is payload, not Ctrl-C
            self._in = sys.stdin.buffer
            self._out = sys.stdout.buffer
            self._reader = asyncio.StreamReader(self._in)
            self._poll = None
        else:
            import os

            self._os = os
            self.fd_in = 0 if fd_in is None else fd_in
            self.fd_out = 1 if fd_out is None else fd_out
            os.set_blocking(self.fd_in, False)
            self._ready = None

    if MICROPYTHON:

        async def readinto(self, buf):
            return await self._reader.readinto(buf)

        def write(self, mv):
            # The emulator's console fd is non-blocking (so reads return what has
            # arrived): a full pty answers None, and we wait until it drains.
            out = self._out
            n = len(mv)
            done = 0
            while done < n:
                k = out.write(mv[done:])
                if k:
                    done += k
                else:
                    if self._poll is None:
                        import select

                        self._poll = select.poll()
                        self._poll.register(out, select.POLLOUT)
                    self._poll.poll(100)

    else:

        async def readinto(self, buf):
            os = self._os
            while True:
                try:
                    return os.readv(self.fd_in, [buf])
                except BlockingIOError:
                    pass
                except OSError:
                    return 0  # peer closed (EIO on a pty whose other side went away)
                loop = asyncio.get_running_loop()
                fut = loop.create_future()
                loop.add_reader(self.fd_in, fut.set_result, None)
                try:
                    await fut
                finally:
                    loop.remove_reader(self.fd_in)

        def write(self, mv):
            import select

            os = self._os
            mv = memoryview(mv)
            while len(mv):
                try:
                    k = os.write(self.fd_out, mv)
                    mv = mv[k:]
                except BlockingIOError:
                    select.select([], [self.fd_out], [], 1.0)
