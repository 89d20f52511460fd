"""host/fabric.py with two paths between the same two units (seed 002's one-way pair
202 / 203): each path's frames arrive on the receiver's channel for that path."""
from firmware import wire
from host.fabric import Fabric


class Link:
    def __init__(self):
        self.closed = False
        self.peer_handler = None
        self.got = []          # (ch, kind, seq, payload) of every frame delivered
        self.sent = []

    def send_raw(self, data):
        d = wire.Decoder(wire.MAX_PAYLOAD)
        d.push(data)
        ch, kind, seq, payload = d.pop()
        self.got.append((ch, kind, seq, bytes(payload)))

    def send(self, ch, kind, seq, payload=b""):
        self.sent.append((ch, kind, seq, bytes(payload)))


class Unit:
    def __init__(self, name):
        self.name = name
        self.link = Link()


def pair():
    f = Fabric()
    f.add_path("main", "sub")      # 202: peer 0 on both
    f.add_path("sub", "main")      # 203: peer 1 on both
    a, b = Unit("main"), Unit("sub")
    f.attach(a)
    f.attach(b)
    return f, a, b


def test_each_path_labels_its_frames_with_its_own_channel():
    f, main, sub = pair()
    sub.link.peer_handler(sub.link, 1, wire.K_PEER, 7, b"fwd")        # over 203
    assert main.link.got == [(wire.CH_PEER + 1, wire.K_PEER, 7, b"fwd")]
    main.link.peer_handler(main.link, 1, wire.K_PEER | wire.RESP, 7, b"\x00")   # its answer
    assert sub.link.got == [(wire.CH_PEER + 1, wire.K_PEER | wire.RESP, 7, b"\x00")]
    main.link.peer_handler(main.link, 0, wire.K_PEER, 8, b"copy")     # over 202
    assert sub.link.got[-1] == (wire.CH_PEER + 0, wire.K_PEER, 8, b"copy")
    assert [p.frames for p in f.paths] == [1, 2]


def test_a_restarted_unit_resets_both_paths_at_its_peer():
    f, main, sub = pair()
    main.link.sent.clear()
    f.attach(sub)
    assert main.link.sent == [(wire.CH_LINK, wire.K_PEER_RESET, 0, bytes([0])),
                              (wire.CH_LINK, wire.K_PEER_RESET, 0, bytes([1]))]
