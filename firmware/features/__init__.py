# Optional capabilities (the seeds' features) plug into a unit here.  A feature module
# has attach(u), which may register:
#   u.ops[name]          async fn(u, cmd) -> (status, reply dict)   management ops
#   u.table_fns[name]    fn(u) -> data                                readable tables
#   u.write_hooks        async fn(u, v, lba, count, data) -> None | status
#   u.read_hooks         async fn(u, v, lba, count, out) -> None | status
#   u.peer_handlers[b]   async fn(u, req, payload)                    peer subtypes
#   u.peer_handlers[peer.KIND_KEY | kind]  same, for a whole frame kind on peer channels
#   u.dka.observers      fn(d, op, status)                            drive statuses
# A hook returning None lets the normal path go on; a status ends the request with it.
# A unit loads the features its configuration lists ("features": [...]).


def load(name):
    """The module of a feature, by name (explicit imports: MicroPython-friendly)."""
    if name == "parity_unit":
        from firmware.features import parity_unit

        return parity_unit
    if name == "volcopy":
        from firmware.features import volcopy

        return volcopy
    if name == "sparing":
        from firmware.features import sparing

        return sparing
    raise ValueError("unknown feature %r" % (name,))
