# Argument checks for management commands and feature settings, in one place.  A check
# that fails raises Refused (a ValueError): the op wrapper (firmware/features) answers
# it as (status, {"error": text}); configuration checks report it as E_BAD_PARAM.
from firmware import wire


class Refused(ValueError):
    """A request or setting refused: .status and the text (str(e))."""

    def __init__(self, status, text=None):
        if text is None:
            status, text = wire.E_BAD_PARAM, status
        super().__init__(text)
        self.status = status


def is_int(v):
    """A JSON integer (true/false are not numbers here)."""
    return isinstance(v, int) and not isinstance(v, bool)


_NONE = object()


def need_int(d, key, lo=0, hi=1 << 40, default=_NONE):
    """d[key] as an integer in [lo, hi]; `default` when the key is absent (if given)."""
    if not isinstance(d, dict):
        raise Refused("expected an object with %r, got %r" % (key, d))
    if key not in d and default is not _NONE:
        return default
    v = d.get(key)
    if not is_int(v) or v < lo or v > hi:
        raise Refused("%s must be an integer in [%d, %d], got %r" % (key, lo, hi, v))
    return v


def need_choice(d, key, allowed, default=_NONE):
    if key not in d and default is not _NONE:
        return default
    v = d.get(key)
    if v not in allowed:
        raise Refused("%s must be one of %s, got %r" % (key, ", ".join([str(a) for a in allowed]), v))
    return v


def need_bool(d, key, default=False):
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise Refused("%s must be true or false, got %r" % (key, v))
    return v


def need_list(d, key, default=_NONE):
    if key not in d and default is not _NONE:
        return default
    v = d.get(key)
    if not isinstance(v, list):
        raise Refused("%s must be a list, got %r" % (key, v))
    return v


def need_table(d, key):
    """d[key] as an object ({} when absent)."""
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise Refused("%s must be a table, got %r" % (key, v))
    return v


def only_keys(d, allowed, where):
    """Refuse a setting the feature does not know (a typo must not pass as a default)."""
    for k in d:
        if k not in allowed:
            raise Refused("%s: unknown setting %r (known: %s)" % (where, k, ", ".join(sorted(allowed))))
