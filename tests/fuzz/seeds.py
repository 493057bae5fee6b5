#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/) from readable definitions.
The seeds are committed; run this only to change them: /usr/bin/python3 tests/fuzz/seeds.py"""
import base64, hashlib, hmac, json, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzz-secret-0123456789abcdef0123"  # the one fake_svc.c and fuzz_jwt.c configure
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, header=None):
    h = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    c = b64url(json.dumps(claims).encode())
    sig = hmac.new(SECRET, f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64url(sig)}"


def frame(op, payload, fin=True, rsv1=False, mask=b"\x11\x22\x33\x44", masked=True):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        hdr = bytes([b0, m | n])
    elif n <= 0xFFFF:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return hdr + payload
    return hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def deflate(data):
    z = zlib.compressobj(wbits=-15)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]  # the 00 00 ff ff tail is dropped on the wire


TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10
RAW, V1, DEFLATE, ECHO = 0, 1, 2, 4


def ws(flags, seed, *frames):
    return bytes([flags, seed]) + b"".join(frames)


def req(path, *headers, key=KEY, proto=None, ext=None):
    lines = [path, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if proto:
        lines.append(f"Sec-WebSocket-Protocol: {proto}")
    if ext:
        lines.append(f"Sec-WebSocket-Extensions: {ext}")
    return ("\n".join(lines + list(headers)) + "\n").encode()


def stream(path, *headers, actions=b""):
    """A request for fake_stream.c, then actions: (opcode, bytes) pairs."""
    text = "\n".join([path] + list(headers)) + "\n\n"
    return text.encode() + b"".join(bytes([ord(op), len(arg)]) + arg for op, arg in actions)


def act(op, arg=b""):
    return (op, arg.encode() if isinstance(arg, str) else arg)


LIVE = [act("e", "typing"), act("m", "one\r\ntwo\rthree\nfour"), act("e", "bad event!"), act("m", b"\xff\x00bin"),
        act("j", '{"a":[1,2]}'), act("j", "{not json"), act("x", "ephemeral"), act("p", "c-7"), act("p", "\x01c-7")]
END = [act("t"), act("g", "e0:9"), act("g", "not an id"), act("s", "\x00")]


def pkey_jwt(claims, alg):
    """A token signed with the committed test keys (tests/fuzz/keys), which fuzz_jwt.c configures."""
    import jwt as pyjwt  # python3-jwt
    name = {"RS256": "rs256", "ES256": "es256"}[alg]
    with open(os.path.join(HERE, "keys", f"{name}.key.pem")) as f:
        return pyjwt.encode(claims, f.read(), algorithm=alg)


def client_key(client, user=""):
    """What presence_client.c hands a long-poll client, under the presence.client_secret fake_stream.c configures."""
    mac = hmac.new(b"fuzz-client-secret-0123456789ab", b"rtbroker client key v1\0" + client.encode() + b"\0" + user.encode(),
                   hashlib.sha256).hexdigest()[:32]
    return f"{client}.{mac}"


def nats(subject, *headers, payload=b""):
    return ("\n".join([subject] + list(headers)) + "\n\n").encode() + payload


good = jwt({"sub": "alice", "exp": 4102444800, "rt": {"sub": ["chat.>", "news.*"], "pub": ["chat.alice"], "info": {"name": "A"}}})
hello = deflate(b"hello hello hello hello hello")

SEEDS = {
    "ws_frame": [
        ws(RAW, 0, frame(TEXT, "hello")),
        ws(RAW | ECHO, 3, frame(BINARY, b"\x00\xff\x10"), frame(TEXT, "x" * 200)),
        ws(RAW | ECHO, 1, frame(TEXT, "hel", fin=False), frame(PING, "p"), frame(CONT, "lo")),
        ws(RAW | DEFLATE | ECHO, 0, frame(TEXT, hello, rsv1=True)),
        ws(RAW | DEFLATE | ECHO, 5, frame(TEXT, hello[:4], fin=False, rsv1=True), frame(CONT, hello[4:])),
        ws(V1, 0, frame(TEXT, '{"op":"ping","ref":1}')),
        ws(V1, 7, frame(TEXT, '{"op":"sub","topic":"chat.a","ref":"r1"}'), frame(TEXT, '{"op":"unsub","topic":"chat.a"}')),
        ws(V1 | DEFLATE, 2, frame(TEXT, deflate(b'{"op":"pub","topic":"chat.a","data":{"x":1},"ref":2}'), rsv1=True)),
        ws(V1, 9, frame(TEXT, '{"op":"auth","token":"%s"}' % good), frame(CLOSE, b"\x03\xe8bye")),
        ws(RAW, 0, frame(PING, ""), frame(PONG, "x"), frame(CLOSE, b"\x03\xe8")),
        ws(RAW, 0, frame(CLOSE, b"\x03")),
        ws(RAW, 0, frame(TEXT, b"\xc3\x28")),
        ws(RAW, 0, frame(TEXT, "unmasked", masked=False)),
        ws(RAW, 0, bytes([0x82, 0xFF]) + struct.pack(">Q", 70000) + b"\x00\x00\x00\x00"),
        ws(V1, 4, frame(BINARY, "{}")),
        ws(RAW | ECHO, 0, frame(TEXT, "zero mask", mask=b"\x00\x00\x00\x00")),
    ],
    "ws_handshake": [
        req("/ws", proto="rt.v1", ext="permessage-deflate; client_max_window_bits"),
        req("/sub/chat.a"),
        req("/sub?topic=chat.a&topic=news.x&since=e1:5", proto="rt.raw"),
        req("/sub/chat.a", "Last-Event-ID: e0:3", ext="permessage-deflate; server_max_window_bits=15, permessage-deflate"),
        req("/ws?topic=chat.*", proto="bearer.abc, rt.v1", ext='permessage-deflate; client_max_window_bits="10"; server_no_context_takeover'),
        req("/ws", "X-Fuzz: a", proto="rt.v1"),
        req("/sub/chat.a", "X-Fuzz: h"),
        req("/sub/chat.a", "X-Fuzz: r"),
        req("/sub/private.x"),
        req("/sub/chat..a"),
        req("/sub/chat.a?since=nope"),
        req("/sub/chat.a", key="short"),
        req("/ws/chat.a", proto="rt.v1", ext="x-webkit-deflate-frame"),
        req("/sub?topic=chat.a&topic=chat.b&topic=chat.c&topic=chat.d&topic=chat.e"),
        b"/sub/chat.a\nUpgrade: websocket\nSec-WebSocket-Version: 8\nSec-WebSocket-Key: " + KEY.encode() + b"\n",
        req("/sub/chat.a?presence=1"),
        req("/sub?topic=chat.a&topic=chat.*&presence=chat.a"),
        req("/sub/chat.*?presence=1"),
    ],
    "ws_ops": [
        b'{"op":"ping","ref":1}',
        b'{"op":"sub","topic":"chat.a","ref":"s1"}',
        b'{"op":"sub","topic":"chat.>","since":"e0:5"}',
        b'{"op":"sub","topic":"news.*","since":"e1:2","ref":3}',
        b'{"op":"sub","topic":"chat..x"}',
        b'{"op":"sub","topic":"private.x"}',
        b'{"op":"unsub","topic":"chat.a","ref":"u"}',
        b'{"op":"pub","topic":"chat.a","data":"hi \\u00e9 \\ud83d\\ude00","ref":4}',
        b'{"op":"pub","topic":"chat.a","data":{"x":[1,2,{"y":null}]},"event":"typing","idempotency_key":"k-1"}',
        b'{"op":"pub","topic":"chat.a","data":true,"ephemeral":true}',
        b'{"op":"pub","topic":"rl.x","data":1}',
        b'{"op":"pub","topic":"chat.*","data":1}',
        b'{"op":"auth","token":"' + good.encode() + b'","ref":"a"}',
        b'{"op":"auth","token":"not.a.jwt"}',
        b'{"op":"nope","ref":null}',
        b'{"op":"ping","ref":"' + b"r" * 130 + b'"}',
        b'{"op":"sub","topic":"\\u0063hat.a"}',
        b'  {"op" : "ping" }  ',
        b'{"op":"sub","topic":"chat.a","presence":true,"ref":1}',
        b'{"op":"presence","topic":"chat.a","ref":"p"}',
        b'{"op":"sub","topic":"chat.*","presence":true}',
    ],
    "text": [
        b"{}", b"[]", b'{"a":1,"b":[true,false,null],"c":{"d":"e"}}', b'"\\u00e9\\ud83d\\ude00\\ud800x"',
        b"-0.5e+10", b"[1,2.0,-3e2]", b'{"k":"\\"\\\\\\/\\b\\f\\n\\r\\t"}', "héllo wörld €𝄞".encode(),
        b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"[" * 70 + b"]" * 70,
        b'{"a":1,"a":2}', b'{"x":"' + b"y" * 300 + b'"}', b" [ \"a\" , {\"b\" : 1} ] ",
    ],
    "topic": [
        b"chat.a\nchat.*\nchat.>\n>\n*.a\nchat.a",
        b"a.b.c\n*.*.*\na.>\n*.b.>\na.b\na.b.c.d",
        b"news\nnews\n*\n>\nnews.>",
        b"x-y_z.1\nx-y_z.*\n*.1\n>",
        b"chat.*\nchat.>\n*.*\nchat.a",
        b"a..b\n.a\na.\n*\n>.a\na.>.b",
        b"chat.room-1.typing\nchat.*.typing\nchat.>\n*.room-1.>\nchat.room-1.typing",
        b"a.b\na.*\na.*\na.b\n>",
        b"t\n" + b"\n".join([b"t", b"*", b">"] * 5),
        b"a" * 255 + b"\n" + b"a" * 255 + b"\n" + b"a" * 256,
        b"caf\xc3\xa9\ncaf*\n>",
        b"seg.*\nseg.>\n>",
    ],
    "id": [
        b"e1:5\n/sub/chat.a?since=e1:5",
        b"k3x9m2aq:41\n/sub?topic=chat.*&topic=news\nLast-Event-ID: e1:30",
        b"e1:0\n/history/chat.*?before=e1:20&limit=3",
        b"e1:18446744073709551615\n/poll?topic=chat.a&cursor=e1:12&limit=1",
        b"e0:3\n/sse?topic=chat.a&lastEventId=e0:3",
        b"a:9999999999999999999\n/sub/news?since=e1%3A25&token=abc",
        b"e1:\n/sub/chat.a\nAuthorization: Bearer abc.def.ghi",
        b":5\n/sub?topic=chat%2Ea&topic=chat.b\nCookie: a=b; rt_token=xyz",
        b"e1:01\n/ws\nSec-WebSocket-Protocol: rt.v1, bearer.tok",
        b"E_p-och:7\n/sub/chat.a\nOrigin: https://a.example",
        b"e1:5x\n/sub/chat.a\nOrigin: https://evil.example",
        b"x" * 33 + b":1\n/sub/chat.a?since=" + b"x" * 33 + b":1",
        b"e1:3\n/sub?topic=chat.a&topic=chat.b&topic=chat.c&topic=chat.d&topic=chat.e&since=e1:3",
        b"e1:4\n/sub/chat.a\nHost: 127.0.0.1:8080\nOrigin: http://127.0.0.1:8080\nCookie: rt_token=a.b.c",
        b"e1:4\n/pub/chat.a\nHost: Broker.Example:443\nX-Forwarded-Proto: https, http\nOrigin: https://broker.example\nCookie: rt_token=a.b.c",
        b"e1:4\n/poll?topic=chat.a\nSec-Fetch-Site: cross-site\nCookie: rt_token=a.b.c",
        b"e1:4\n/sub/chat.a\nOrigin: https://a.example\nCookie: rt_token=a.b.c\nX-Forwarded-Proto: ",
    ],
    "jwt": [
        b"\x00" + good.encode(),
        b"\x00" + jwt({"sub": "bob", "rt": {"sub": [">"]}}).encode(),
        b"\x00" + jwt({"sub": "bob", "exp": 1}).encode(),
        b"\x00" + jwt({"sub": "bob"}, {"alg": "none"}).encode(),
        b"\x00" + jwt({"sub": "bob"}, {"alg": "RS256"}).encode(),
        b"\x00not-a-token",
        b"\x01" + json.dumps({"sub": "carol", "rt": {"sub": ["chat.*", "bad..x", 5], "pub": ["chat.carol"]}}).encode(),
        b"\x01" + json.dumps({"sub": "dave", "nbf": 4102444800, "rt": {"sub": ["a.>"]}}).encode(),
        b"\x01" + json.dumps({"exp": "soon", "rt": {"info": {"k": [1, 2]}}}).encode(),
        b"\x05" + json.dumps({"iss": "fuzz-iss", "aud": ["x", "fuzz-aud"], "rt": {"sub": ["chat.>"]}}).encode(),
        b"\x05" + json.dumps({"iss": "fuzz-iss", "aud": "other", "rt": {"sub": ["chat.>"]}}).encode(),
        b'\x02{"alg":"HS256"}\n{"sub":"eve","exp":4102444800.5,"rt":{"sub":["x.*"],"pub":[">"]}}',
        b'\x02{"alg":"HS384","typ":"JWT"}\n{"sub":"eve"}',
        b'\x06{"alg":"HS256"}\n{"iss":"fuzz-iss","aud":"fuzz-aud","rt":{"pub":["p.q"]}}',
        # RS256 and ES256 (key sets 1-3 in fuzz_jwt.c's byte 0)
        b"\x08" + pkey_jwt({"sub": "rs", "exp": 4102444800, "rt": {"sub": ["chat.>"], "pub": ["chat.rs"]}}, "RS256").encode(),
        b"\x10" + pkey_jwt({"sub": "es", "exp": 4102444800, "rt": {"sub": ["news.*"], "info": {"k": 1}}}, "ES256").encode(),
        b"\x18" + pkey_jwt({"sub": "rs-only", "rt": {"sub": [">"]}}, "RS256").encode(),
        b"\x10" + pkey_jwt({"sub": "wrong-key"}, "RS256").encode(),
        b"\x09" + json.dumps({"sub": "rs1", "nbf": 1, "rt": {"sub": ["a.b", "a..b"]}}).encode(),
        b"\x11" + json.dumps({"sub": "es1", "exp": 1}).encode(),
        b'\x0a{"alg":"RS256","kid":"k"}\n{"sub":"rs2","rt":{"pub":["x.>"]}}',
        b'\x12{"alg":"ES256"}\n{"sub":"es2","aud":["fuzz-aud"]}',
        b'\x16{"alg":"ES256"}\n{"iss":"fuzz-iss","aud":"fuzz-aud","rt":{"sub":["q.*"]}}',
        b'\x0b{"alg":"HS256"}\n{"sub":"confused"}',
        b'\x1b{"alg":"HS256","typ":"JWT"}\n{"sub":"confused","rt":{"sub":[">"]}}',
        b'\x1a{"alg":"ES256"}\n{"sub":"es-sig-under-rs-key"}',
        # auth.jwt.require_exp (bit 5): refused without exp, accepted with one; with an RS256 key set too
        b"\x20" + jwt({"sub": "bob", "rt": {"sub": ["chat.*"]}}).encode(),
        b"\x21" + json.dumps({"sub": "erin", "exp": 4102444800, "rt": {"sub": ["chat.*"]}}).encode(),
        b"\x28" + pkey_jwt({"sub": "rs-no-exp", "rt": {"sub": ["chat.>"]}}, "RS256").encode(),
    ],
    "sse": [
        stream("/sse?topic=chat.a", "Accept: text/event-stream", actions=LIVE + END),
        stream("/sub/chat.a", "Accept: text/event-stream", "Last-Event-ID: e1:1", actions=LIVE),
        stream("/sse?topic=chat.a&topic=news.x&envelope=1&since=e0:4", "Accept: text/event-stream", actions=LIVE + END),
        stream("/sse?topic=chat.a&presence=1&client=abc-1&lastEventId=e1:0", "Accept: text/event-stream", actions=LIVE),
        stream("/sse?topic=chat.*&presence=chat.a", "Accept: text/event-stream"),
        stream("/sse?topic=private.x", "Accept: text/event-stream"),
        stream("/sse?topic=chat.a&since=e1:x", "Accept: text/event-stream"),
        stream("/sse?topic=chat.a", "Accept: text/event-stream", f"Authorization: Bearer {'{'}"),
        stream("/sse?topic=chat.a&envelope=true&token=" + "x" * 20, "Accept: text/event-stream", actions=[act("s", "\x02")]),
    ],
    "ndjson": [
        stream("/ndjson?topic=chat.a", "Accept: application/x-ndjson", actions=LIVE + END),
        stream("/sub/chat.a", "Accept: text/plain, application/x-ndjson", "Last-Event-ID: e1:2", actions=LIVE),
        stream("/ndjson?topic=chat.a&topic=chat.b&since=zz:1&presence=1", "Accept: application/x-ndjson", actions=LIVE + END),
        stream("/ndjson?topic=a..b", "Accept: application/x-ndjson"),
        stream("/ndjson?topic=chat.a&topic=chat.b&topic=chat.c&topic=chat.d&topic=chat.e&topic=chat.f&topic=chat.g",
               "Accept: application/x-ndjson"),
        stream("/ndjson?topic=chat.a", "Accept: application/x-ndjson", actions=[act("s", "\x01")]),
    ],
    "longpoll": [
        stream("/poll?topic=chat.a", actions=LIVE),
        stream("/poll?topic=chat.a&cursor=e1:0", actions=LIVE),
        stream("/poll?topic=chat.a&cursor=e1:1&timeout=0"),
        stream("/poll?topic=chat.a&cursor=e9:5&timeout=3"),
        stream("/poll?topic=chat.a&presence=1&client=c-12&timeout=30", actions=[act("m", "x"), act("t")]),
        stream("/poll?topic=chat.a&presence=1&client=" + "x" * 60, actions=[act("t")]),
        stream("/poll?topic=chat.a&timeout=abc"),
        stream("/poll?topic=chat.a&timeout=-1"),
        stream("/poll?topic=chat.a&timeout=99999999999999999"),
        stream("/sub/chat.a?since=e1:3", "Last-Event-ID: e1:1", actions=[act("s", "\x02")]),
        stream("/poll?topic=chat.*&presence=1"),
        # client= is a client_key: one given to this (anonymous) user continues the member, a bare id is refused
        stream("/poll?topic=chat.a&presence=1&client=" + client_key("c-12"), actions=[act("p", "c-12"), act("t")]),
        stream("/poll?topic=chat.a&presence=1&client=" + client_key("c-12", "alice"), actions=[act("t")]),
    ],
    "nats_msg": [
        nats("rt.chat.a", payload=b"hello"),
        nats("rt.chat.a", "Rt-Event: typing", "Content-Type: application/json", payload=b'{"x":[1,2]}'),
        nats("rt_eph.chat.b", "Rt-Event: cursor", payload=b"\xff\xfe"),
        nats("rt.chat.a", "Nats-Msg-Id: chat.a:k-1", "Content-Type: text/plain; charset=utf-8", payload=b"a\r\nb"),
        nats("rt.chat.*", payload=b"x"),
        nats("rt", payload=b"x"),
        nats("other.chat.a", payload=b"x"),
        nats("rt.chat.a", "Rt-Event: " + "e" * 70, payload=b"x"),
        nats("rt.chat.a", "Content-Type: application/json", payload=b"{bad"),
        nats("rt_eph.", payload=b""),
    ],
    "presence": [
        b'm.node1.chat.a {"v":1,"m":[["c-1","alice",{"name":"A"}],["c-2",null,null]]}\n'
        b'm.node1.chat.a {"v":2,"m":[["c-2",null,null]]}\nn.node1 {"t":1}\n',
        b'm.node2.chat.b {"v":5,"m":[["c-\\u0041","bob\\n",null]]}\nm.node2.chat.b {"v":4,"m":[]}\n',
        b'm.node3.chat.c {"v":1,"m":[["bad id!","x",null],["c-9","y",[1]],["c-10"]]}\n',
        b'm.node4.chat.d {"m":[["c-1",null,null]]}\nm.node4. {"v":1,"m":[]}\nm.node4 {"v":1}\n',
        b'm.n.chat.e {"v":18446744073709551615,"m":[["a","\xc3\xa9",{"k":"\\ud83d\\ude00"}]]}\n',
        b'm.n5.chat.f {"v":3,"m":[["c1","u",null],["c1","u",null],["c2","u",null]]}\n',
        b'm.n6.chat.g {"v":2,"m":[["c-3","\\u00e9l\\u00e8ve",{"a":"\\u0000"}]]}\n',
    ],
    "config": [
        open(os.path.join(HERE, "..", "..", "conf", "rtbroker.yaml"), "rb").read(),
        open(os.path.join(HERE, "..", "..", "conf", "rtbroker-nats.yaml"), "rb").read(),
        b"",
        b"listen: [127.0.0.1:8080, '[::1]:9090', 7070]\nworkers: 2\n",
        b"history:\n  max_messages: 5\n  max_age: 90s\npublish:\n  dedup_window: 250ms\n",
        b"limits:\n  max_message_bytes: 64KiB\n  max_queue_bytes: 2MiB\n  max_topics: 8\n",
        b"websocket:\n  ping_interval: 10s\n  deflate: false\n  deflate_threshold: 1KiB\n",
        b"plugins:\n  websocket:\n    echo: true\n  load: [websocket]\n",
        b"extra:\n  count: 11\n",
        b"auth:\n  anonymous:\n    subscribe: ['chat.>']\n  jwt:\n  cookie: tok\n",
        b"listen: nowhere\n",
        b"a: &x {b: 1}\nc: *x\n",
        b"- just\n- a list\n",
        b"history: {max_messages: [1, 2]}\n",
        b"nats:\n  url: nats://a:4222,nats://b:4222\n  replicas: 9\n",
    ],
}

for target, seeds in SEEDS.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for i, data in enumerate(seeds):
        with open(os.path.join(d, f"seed-{i:02d}"), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds")
