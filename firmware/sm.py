# Shared memory (SM): the control tables every adapter and job works from.
# Tables are plain dicts/lists so the host can read any of them as data (JSON).
# Everything a unit needs after a reset lives here and is persisted to the board's
# filesystem (write to a temporary file, then rename), and reloaded at boot.
import json
import os

SM_FILE = "sm.json"
SM_TMP = "sm.json.tmp"
FORMAT = 1


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class SharedMemory:
    def __init__(self, path=SM_FILE):
        self.path = path
        self.tmp = path + ".tmp"
        self.t = {}         # table name -> table (persisted)
        self.saves = 0
        self.dirty = False
        self.boots = 0
        self.frozen = False   # set when the board loses power: nothing reaches the file
        self.before_save = []   # fns run before every save (features put runtime state into tables)

    def load(self):
        """Reload persisted tables; return True if there were any."""
        if not _exists(self.path):
            return False
        with open(self.path) as f:
            doc = json.load(f)
        if doc.get("format") != FORMAT:
            raise ValueError("sm.json: unknown format %r" % doc.get("format"))
        self.t = doc["tables"]
        return True

    def save(self):
        if self.frozen:
            return
        for fn in self.before_save:
            fn()
        with open(self.tmp, "w") as f:
            json.dump({"format": FORMAT, "tables": self.t}, f)
        os.rename(self.tmp, self.path)
        self.saves += 1
        self.dirty = False

    def clear(self):
        self.t = {}
        for p in (self.path, self.tmp):
            if _exists(p):
                os.remove(p)

    def get(self, name, default=None):
        return self.t.get(name, default)

    def put(self, name, value, persist=True):
        self.t[name] = value
        if persist:
            self.save()
