# Peer channels (one per path to another storage unit): subtypes of K_PEER frames and
# whole frame kinds that features claim.  A handler is async fn(u, req, payload).
from firmware import wire

PEER_PING = 0x01   # answered by every unit: "pong NAME ..."
KIND_KEY = 0x100   # u.peer_handlers[KIND_KEY | kind]: a feature's own frame kind on peer channels


async def handle(u, req):
    """A request that arrived on a peer channel."""
    p = req.payload()
    if req.kind != wire.K_PEER:
        h = u.peer_handlers.get(KIND_KEY | req.kind)
        if h is None:
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_KIND)
        return await h(u, req, p)
    if len(p) < 1:
        return u.link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    sub = p[0]
    if sub == PEER_PING:
        name = u.board.get("unit", u.board["name"])
        return u.link.respond(req.ch, req.kind, req.seq, wire.OK,
                              b"pong " + name.encode() + b" " + bytes(p[1:]))
    h = u.peer_handlers.get(sub)
    if h is None:
        return u.link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_KIND)
    await h(u, req, p)
