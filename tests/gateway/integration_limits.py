#!/usr/bin/python3
"""integration_limits.py: the gateway's limits of issue 13 (items 3-5) against the real stack,
with Debian's python3-websockets and raw sockets for what no polite client sends.
Registered in ctest as test_gateway_limits (label integration). Needs .run/env (scripts/stack
up); starts its own meridian-gateway twice on free ports of the stack's block (base+84 with
small limits for the connection cap and address rate, base+85 for the rest), stopping each.

Covers: a token expiring while connected is closed with 4001 (a rider's, and an ops
stream's on /v1/ops, which still got its frames until then); tokens living longer than
MERIDIAN_GW_TOKEN_MAX_LIFETIME (exp - iat, or exp - now without iat) get 401, exactly the
maximum 101; one live connection per user and role (the older gets 4002, events go to the
newer); the rate budget is the user's, not the connection's; 503 at the connection cap and
429 over the address rate, at the upgrade; a ping flood is closed 1008 while another client
is served; oversized headers get 431; refused upgrades log at a bounded rate;
`accept o5-x` / `complete t63-x` answered unknown_offer / invalid_state and not produced;
close frames with invalid codes answered 1002; the apps' sockets carry TCP keepalive. Prints
a pass/fail count; exits 1 on failure.
Usage: integration_limits.py --gateway BIN --tool gw_kafka_tool --root SRC
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import websockets

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("ok:", what)
    else:
        failed += 1
        print("FAIL:", what)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub, role, secret, exp_in=3600, iat_ago=None):
    now = int(time.time())
    claims = {"sub": sub, "role": role, "exp": now + exp_in}
    if iat_ago is not None:
        claims["iat"] = now - iat_ago
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(sig)}"


async def status_of(url, headers=None):
    try:
        async with websockets.connect(url, extra_headers=headers or {}, open_timeout=5):
            return 101
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


async def recv_json(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def closed_code(ws, timeout=10.0):
    """Read until the server closes; the close code it sent (None when none)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.exceptions.ConnectionClosed as e:
        return (e.rcvd.code, e.rcvd.reason) if e.rcvd else (None, None)
    except asyncio.TimeoutError:
        return ("timeout", None)


# ---- raw WebSocket, for frames a library will not send ----------------------------------

def raw_connect(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return s, head.split(b"\r\n")[0], rest


def frame(opcode, payload):
    """A masked client frame (mask 0: the payload travels as is)."""
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    else:
        hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    return hdr + b"\x00\x00\x00\x00" + payload


def read_close(s, rest, timeout=5.0):
    """Read frames until a close; its code (None on EOF without one)."""
    s.settimeout(timeout)
    buf = rest
    deadline = time.time() + timeout
    while time.time() < deadline:
        while len(buf) >= 2:
            op, ln = buf[0] & 0x0F, buf[1] & 0x7F
            off = 2
            if ln == 126:
                if len(buf) < 4:
                    break
                ln, off = struct.unpack("!H", buf[2:4])[0], 4
            if len(buf) < off + ln:
                break
            payload, buf = buf[off:off + ln], buf[off + ln:]
            if op == 8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return None
        if not chunk:
            return None
        buf += chunk
    return None


# ---- the gateway under test ----------------------------------------------------------------

class Gateway:
    def __init__(self, binary, root, port, extra):
        self.port = port
        env = dict(os.environ, MERIDIAN_GATEWAY_PORT=str(port),
                   MERIDIAN_SERVICE_AREA=os.path.join(root, "data/roads/manhattan-boundary.geojson"))
        env.update(extra)
        self.log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"gw-limits-{os.getpid()}-{port}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        check(False, f"gateway on {port} became ready")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = -9
        self.log.close()
        check(rc == 0, f"gateway on {self.port} exits 0 on SIGTERM (got {rc}; log {self.log_path})")

    def log_lines(self, needle):
        with open(self.log_path) as f:
            return [l for l in f if needle in l]


# ---- item 3: tokens -------------------------------------------------------------------------

async def test_token_expiry_closes(base, secret):
    ws = await websockets.connect(f"{base}/v1/rider?token={token('rider-exp', 'rider', secret, exp_in=3)}")
    t0 = time.time()
    code, reason = await closed_code(ws, 10)
    took = time.time() - t0
    check(code == 4001 and reason == "token expired" and took < 6,
          f"token expiring while connected: closed 4001 'token expired' after {took:.1f} s (got {code} {reason!r})")


async def test_ops_token_expiry_closes(base, secret):
    """The ops stream (/v1/ops, role ops) is closed at its token's expiry like the apps'."""
    ws = await websockets.connect(f"{base}/v1/ops?token={token('ops-exp', 'ops', secret, exp_in=3)}")
    t0 = time.time()
    frames = 0
    code, reason = None, None
    try:
        while time.time() - t0 < 10:
            await asyncio.wait_for(ws.recv(), 10)
            frames += 1
    except websockets.exceptions.ConnectionClosed as e:
        code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd else (None, None)
    except asyncio.TimeoutError:
        code = "timeout"
    took = time.time() - t0
    check(frames > 0, f"ops stream sent frames before its token expired ({frames})")
    check(code == 4001 and reason == "token expired" and 2 <= took < 6,
          f"ops token expiring while connected: closed 4001 'token expired' after {took:.1f} s "
          f"(got {code} {reason!r})")
    # an ops token that lives on is not closed meanwhile
    async with websockets.connect(f"{base}/v1/ops?token={token('ops-live', 'ops', secret, exp_in=600)}") as live:
        t1, still_open = time.time(), True
        try:
            while time.time() - t1 < 3:
                await asyncio.wait_for(live.recv(), 3)
        except websockets.exceptions.ConnectionClosed:
            still_open = False
        except asyncio.TimeoutError:
            pass
        check(still_open, "an ops connection whose token lives on stays open")


async def test_token_lifetime(base, secret):
    long_iat = token("drv-life", "driver", secret, exp_in=3600, iat_ago=3600)  # 2 h, max 1 h
    check(await status_of(f"{base}/v1/driver?token={long_iat}") == 401, "exp - iat above the maximum -> 401")
    long_no_iat = token("drv-life", "driver", secret, exp_in=7200)
    check(await status_of(f"{base}/v1/driver?token={long_no_iat}") == 401, "exp - now above the maximum (no iat) -> 401")
    exact = token("drv-life", "driver", secret, exp_in=3590, iat_ago=10)  # exactly 1 h
    check(await status_of(f"{base}/v1/driver?token={exact}") == 101, "exactly the maximum lifetime -> 101")
    ops = token("ops-1", "ops", secret)
    check(await status_of(f"{base}/v1/driver?token={ops}") == 403, "ops token -> 403")
    badsub = token("drv 1", "driver", secret)
    check(await status_of(f"{base}/v1/driver?token={badsub}") == 401, "sub that is no id -> 401")


# ---- item 4: one connection per user and role, shared budgets ------------------------------

async def test_newest_wins(base, secret, tool, brokers):
    old = await websockets.connect(f"{base}/v1/rider?token={token('rider-nw', 'rider', secret)}")
    drv = await websockets.connect(f"{base}/v1/driver?token={token('rider-nw', 'driver', secret)}")
    await asyncio.sleep(0.3)
    new = await websockets.connect(f"{base}/v1/rider?token={token('rider-nw', 'rider', secret)}")
    code, reason = await closed_code(old, 5)
    check(code == 4002 and reason == "replaced by a newer connection",
          f"older rider connection closed 4002 (got {code} {reason!r})")
    rc = subprocess.run([tool, "event", brokers, "7", "matched", "t1-it-nw", "rider-nw", "drv-other"]).returncode
    m = await recv_json(new, 10)
    check(rc == 0 and m.get("type") == "matched" and m.get("trip_id") == "t1-it-nw",
          f"the newer connection gets the user's events: {m}")
    await new.send('{"type":"nearby","lat":40.75,"lon":-73.99,"radius_m":500,"ref":"alive"}')
    m = await recv_json(new)
    check(m.get("ref") == "alive", f"the newer connection is served: {m}")
    await drv.send('{"type":"status","status":"offline","ref":"d1"}')
    m = await recv_json(drv)
    check(m == {"type": "ack", "ref": "d1"}, f"the same id as a driver is another connection, kept: {m}")
    for ws in (new, drv):
        await ws.close()


async def test_budget_shared(base, secret):
    """The rider budget (burst 5) is the user's: a second connection does not add to it."""
    a = await websockets.connect(f"{base}/v1/rider?token={token('rider-bud', 'rider', secret)}")
    for i in range(5):
        await a.send('{"type":"nearby","lat":40.75,"lon":-73.99,"radius_m":500,"ref":"a%d"}' % i)
    got = [await recv_json(a) for _ in range(5)]
    check(all(m.get("type") == "nearby" for m in got), "five messages within the burst")
    b = await websockets.connect(f"{base}/v1/rider?token={token('rider-bud', 'rider', secret)}")
    await b.send('{"type":"nearby","lat":40.75,"lon":-73.99,"radius_m":500,"ref":"b0"}')
    m = await recv_json(b)
    check(m.get("code") == "rate_limited" and m.get("ref") == "b0",
          f"a new connection of the same rider starts with the drained budget: {m}")
    await b.close()


async def test_ping_flood(port, base, secret):
    """A ping flood drains the byte budget: closed 1008 while another client is served."""
    tok = token("drv-ping", "driver", secret)
    s, status, rest = raw_connect(port, f"/v1/driver?token={tok}")
    check(b"101" in status, f"raw client upgraded: {status}")
    stop = threading.Event()
    sent = [0]

    def flood():
        ping = frame(0x9, b"p" * 100) * 64
        s.settimeout(0.5)
        while not stop.is_set():
            try:
                s.sendall(ping)
                sent[0] += len(ping)
            except (socket.timeout, OSError):
                if stop.is_set():
                    break
    th = threading.Thread(target=flood)
    th.start()
    # meanwhile another client is served promptly
    lat = []
    async with websockets.connect(f"{base}/v1/rider?token={token('rider-calm', 'rider', secret)}") as ws:
        for i in range(4):
            t0 = time.time()
            await ws.send('{"type":"nearby","lat":40.75,"lon":-73.99,"radius_m":500,"ref":"c%d"}' % i)
            m = await recv_json(ws, 5)
            lat.append(time.time() - t0)
            await asyncio.sleep(0.3)
    stop.set()
    th.join(5)
    s.settimeout(5)
    code = read_close(s, b"", 5)
    s.close()
    check(max(lat) < 1.0, f"another client served during the flood (worst {max(lat) * 1000:.0f} ms)")
    check(code == 1008 or code is None, f"ping flood closed (code {code}, {sent[0] // 1024} KiB sent)")
    return sent[0]


async def test_tcp_keepalive(port, base, secret):
    """An app's connection is watched by TCP keepalive (lws's per-frame validity timer is off):
    the gateway's end of the socket carries the kernel's keepalive timer, due within 300 s."""
    async with websockets.connect(f"{base}/v1/driver?token={token('drv-ka', 'driver', secret)}") as ws:
        client_port = ws.transport.get_extra_info("sockname")[1]
        out = subprocess.run(["ss", "-tnoH", "state", "established",
                              f"( sport = :{port} and dport = :{client_port} )"],
                             capture_output=True, text=True, timeout=10).stdout
        timer = out[out.find("timer:("):].split(")")[0] if "timer:(" in out else ""
        check(timer.startswith("timer:(keepalive,"), f"the gateway's socket has a keepalive timer: {timer!r}")
        mins = timer.split(",")[1] if timer.count(",") >= 1 else ""
        check(mins.endswith("sec") and ("min" not in mins or int(mins.split("min")[0]) < 5),
              f"keepalive probes within 300 s of silence ({mins})")


# ---- item 5: smaller ones ---------------------------------------------------------------------

def test_oversized_headers(port, secret):
    def req(extra):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(("GET /v1/driver HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   f"X-Big: {extra}\r\n\r\n").encode())
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        s.close()
        return data.split(b"\r\n")[0]
    check(req("x" * 100).startswith(b"HTTP/1.1 401"), "small headers, no token -> 401")
    line = req("x" * 20000)
    check(line.startswith(b"HTTP/1.1 431"), f"20 KB of headers -> 431 (got {line!r})")
    line = req("x" * 9000)
    check(line.startswith(b"HTTP/1.1 431"), f"9 KB of headers -> 431 (got {line!r})")


async def test_unknown_shard(base, secret, tool, brokers):
    reader = subprocess.Popen([tool, "commands", brokers, "4000"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    ready = reader.stderr.readline().strip() == "ready"
    async with websockets.connect(f"{base}/v1/driver?token={token('drv-shard', 'driver', secret)}") as ws:
        await ws.send('{"type":"accept","offer_id":"o5-x","ref":"a1"}')
        m = await recv_json(ws)
        check(m.get("code") == "unknown_offer" and m.get("ref") == "a1", f"accept o5-x -> unknown_offer: {m}")
        await ws.send('{"type":"complete","trip_id":"t63-x","ref":"c1"}')
        m = await recv_json(ws)
        check(m.get("code") == "invalid_state" and m.get("ref") == "c1", f"complete t63-x -> invalid_state: {m}")
        await ws.send('{"type":"decline","offer_id":"o1-x","ref":"a2"}')
        m = await recv_json(ws)
        check(m == {"type": "ack", "ref": "a2"}, f"decline o1-x (a shard of the map) still acked: {m}")
    out, _ = reader.communicate(timeout=20)
    mine = [l for l in out.splitlines() if "drv-shard" in l]
    check(ready and len(mine) == 1 and "o1-x" in mine[0],
          f"only the command for a shard of the map was produced: {mine}")


def test_close_codes(port, secret):
    for code, want in ((999, 1002), (1005, 1002), (5000, 1002), (2000, 1002), (1000, 1000), (4000, 4000)):
        s, status, rest = raw_connect(port, f"/v1/rider?token={token('rider-close%d' % code, 'rider', secret)}")
        s.sendall(frame(0x8, struct.pack("!H", code) + b"bye"))
        got = read_close(s, rest)
        s.close()
        check(got == want, f"client close {code} answered {want} (got {got})")
    s, status, rest = raw_connect(port, f"/v1/rider?token={token('rider-close1', 'rider', secret)}")
    s.sendall(frame(0x8, b"\x03"))
    got = read_close(s, rest)
    s.close()
    check(got == 1002, f"a 1-byte close payload answered 1002 (got {got})")


async def test_refusals_logged_at_a_bounded_rate(gw, base):
    before = len(gw.log_lines("upgrade_refused"))
    t0 = time.time()
    codes = await asyncio.gather(*[status_of(f"{base}/v1/driver?token=abc.def.ghi") for _ in range(60)])
    took = time.time() - t0
    await asyncio.sleep(0.5)
    lines = len(gw.log_lines("upgrade_refused")) - before
    check(all(c == 401 for c in codes), "60 bad tokens -> 60 401s")
    bound = 5 + 5 * (took + 0.5) + 1
    check(lines <= bound, f"60 refusals in {took:.1f} s logged {lines} lines (bound {bound:.0f})")
    m = urllib.request.urlopen(f"http://127.0.0.1:{gw.port}/metrics", timeout=5).read().decode()
    n401 = [l for l in m.splitlines() if l.startswith('meridian_gateway_upgrades_refused_total{status="401"}')]
    check(n401 and float(n401[0].split()[-1]) >= 60, f"every refusal counted in /metrics: {n401}")


# ---- the cap and the address rate (a gateway with small limits) -----------------------------

async def test_cap_and_address_rate(base, secret):
    held = []
    for i in range(3):
        held.append(await websockets.connect(f"{base}/v1/rider?token={token(f'rider-cap{i}', 'rider', secret)}"))
    st = await status_of(f"{base}/v1/rider?token={token('rider-cap9', 'rider', secret)}")
    check(st == 503, f"connection over the cap of 3 -> 503 (got {st})")
    for ws in held:
        await ws.close()
    await asyncio.sleep(0.3)
    sts = []
    for i in range(4):
        sts.append(await status_of(f"{base}/v1/rider?token={token(f'rider-rate{i}', 'rider', secret)}"))
    # burst 5: three taken by the held ones, the 503 took none, two more pass, then 429
    check(sts == [101, 101, 429, 429], f"address over its connection rate -> 429 (got {sts})")


async def main_async(args, secret, brokers, base_port):
    small = Gateway(args.gateway, args.root, base_port + 84,
                    {"MERIDIAN_GW_MAX_CONNS": "3", "MERIDIAN_GW_IP_CONN_RATE": "0.05",
                     "MERIDIAN_GW_IP_CONN_BURST": "5"})
    try:
        await test_cap_and_address_rate(f"ws://127.0.0.1:{small.port}", secret)
    finally:
        small.stop()
    gw = Gateway(args.gateway, args.root, base_port + 85,
                 {"MERIDIAN_GW_TOKEN_MAX_LIFETIME": "1h", "MERIDIAN_GW_RX_CHECK_MS": "100ms"})
    base = f"ws://127.0.0.1:{gw.port}"
    try:
        await test_token_lifetime(base, secret)
        await test_token_expiry_closes(base, secret)
        await test_ops_token_expiry_closes(base, secret)
        await test_newest_wins(base, secret, args.tool, brokers)
        await test_budget_shared(base, secret)
        await test_unknown_shard(base, secret, args.tool, brokers)
        test_close_codes(gw.port, secret)
        test_oversized_headers(gw.port, secret)
        await test_refusals_logged_at_a_bounded_rate(gw, base)
        await test_ping_flood(gw.port, base, secret)
        await test_tcp_keepalive(gw.port, base, secret)
    finally:
        gw.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    for k in ("MERIDIAN_KAFKA_BROKERS", "MERIDIAN_REDIS_URL", "MERIDIAN_PG_DSN", "MERIDIAN_JWT_SECRET"):
        if not os.environ.get(k):
            print(f"FAIL: {k} is not set (run under scripts/test or source .run/env)")
            return 1
    base_port = int(os.environ.get("MERIDIAN_STACK_PORT_BASE", "15400"))
    asyncio.run(main_async(args, os.environ["MERIDIAN_JWT_SECRET"], os.environ["MERIDIAN_KAFKA_BROKERS"],
                           base_port))
    print(f"integration_limits: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
