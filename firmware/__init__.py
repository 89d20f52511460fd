# Storage-controller firmware: runs unchanged on the MicroPython unix port (the
# emulator), on CPython and on MicroPython boards.
