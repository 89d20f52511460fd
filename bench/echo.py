# The link's limit: echo every byte back, as fast as the console allows.  Runs under
# MicroPython (the emulator's binary) and under CPython (the CPython board), with the
# pty as its console exactly as the firmware has it (host/boards.py PtyLauncher):
#
#   micropython bench/echo.py [bufsize]      python bench/echo.py [bufsize]
#
# bench/linkbench.py drives it: the host writes frames of one size, keeps a few in
# flight, and reads the echo back.
import select
import sys

try:
    import micropython

    micropython.kbd_intr(-1)  # 0x03 is data, not Ctrl-C
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
except ImportError:
    inp = getattr(sys.stdin.buffer, "raw", sys.stdin.buffer)     # unbuffered under python -u
    out = getattr(sys.stdout.buffer, "raw", sys.stdout.buffer)

size = int(sys.argv[1]) if len(sys.argv) > 1 else 65536
buf = bytearray(size)
mv = memoryview(buf)
pin = select.poll()
pin.register(inp, select.POLLIN)
pout = select.poll()
pout.register(out, select.POLLOUT)
while True:
    try:
        n = inp.readinto(buf)
    except OSError:
        break
    if n is None:      # the console is non-blocking: wait for bytes
        pin.poll(1000)
        continue
    if n == 0:
        break
    done = 0
    while done < n:
        k = out.write(mv[done:n])
        if k:
            done += k
        else:
            pout.poll(100)
