#!/usr/bin/python3
"""integration_gateway_drain.py: the gateway's graceful shutdown (what a Kubernetes rollout
does to it), against the real stack, with Debian's python3-websockets as the client.
Registered in ctest as test_gateway_drain (label integration).

Starts its own meridian-gateway (MERIDIAN_GW_DRAIN_MS=3s), opens three well-behaved client
connections (two drivers, one rider) and one raw client that completes the upgrade and then
never reads (it cannot answer a close frame), then sends SIGTERM. Checks:
- every well-behaved client gets a close frame 1012 "service restart" (the code clients
  reconnect on) and no abrupt drop;
- while the gateway waits for the silent client, /readyz answers 503 and a new upgrade is
  refused with 503 (the client retries elsewhere), /healthz still answers;
- the gateway exits 0 after the drain time (not at once, not at the kill), and its log
  says how many connections it drained;
- a client reconnects to a fresh gateway on the same port after the restart;
- a storm of apps waiting for the port while a gateway starts (what every app does after a
  restart) is served or refused, never left on a WebSocket nobody serves: upgrades read
  before lws applied the vhost's default protocol used to bind to the HTTP protocol, were
  answered 101 and then dropped every message (the chaos replay's lost trips).
Prints a pass/fail count; exits 1 on any failure.
Usage: integration_gateway_drain.py --gateway BIN --root SRC
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
import subprocess
import sys
import time
import urllib.error
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


def token(sub, role, secret):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": sub, "role": role, "exp": int(time.time()) + 3600}).encode())
    sig = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(sig)}"


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def start_gateway(args, env, log):
    gw = subprocess.Popen([args.gateway], env=env, stdout=log, stderr=subprocess.STDOUT)
    port = int(env["MERIDIAN_GATEWAY_PORT"])
    for _ in range(150):
        if http_status(port, "/readyz") == 200:
            return gw
        if gw.poll() is not None:
            break
        time.sleep(0.1)
    return gw


def silent_client(port, tok):
    """A client that upgrades, then never reads again: it cannot answer a close frame."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/driver?token={tok} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return s, head.split(b"\r\n", 1)[0].decode(errors="replace")


async def upgrade_status(url):
    try:
        async with websockets.connect(url, open_timeout=3):
            return 101
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code
    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
        return None


async def wait_close(ws):
    """Read until the server closes; returns (code, reason) of its close frame."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 15)
    except websockets.exceptions.ConnectionClosed:
        return ws.close_code, ws.close_reason
    except asyncio.TimeoutError:
        return None, "no close within 15 s"


async def drain(args, gw, port, secret, log_path):
    base = f"ws://127.0.0.1:{port}"
    clients = [
        await websockets.connect(f"{base}/v1/driver?token={token('drv-drain-1', 'driver', secret)}"),
        await websockets.connect(f"{base}/v1/driver?token={token('drv-drain-2', 'driver', secret)}"),
        await websockets.connect(f"{base}/v1/rider?token={token('rdr-drain-1', 'rider', secret)}"),
    ]
    raw, status_line = silent_client(port, token("drv-drain-silent", "driver", secret))
    check("101" in status_line, f"the silent client is upgraded ({status_line})")
    waiters = [asyncio.ensure_future(wait_close(ws)) for ws in clients]
    await asyncio.sleep(0.2)

    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    closes = await asyncio.gather(*waiters)
    for i, (code, reason) in enumerate(closes):
        check(code == 1012 and reason == "service restart",
              f"client {i} got close 1012 'service restart' (got {code} {reason!r})")
    # the silent client holds the drain open: meanwhile the gateway is out of rotation
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, http_status, port, "/readyz")
    health = await loop.run_in_executor(None, http_status, port, "/healthz")
    check(ready == 503, f"/readyz is 503 while draining (got {ready})")
    check(health == 200, f"/healthz still 200 while draining (got {health})")
    newcomer = await upgrade_status(f"{base}/v1/driver?token={token('drv-drain-late', 'driver', secret)}")
    check(newcomer == 503, f"a new upgrade while draining gets 503 (got {newcomer})")
    rc = await loop.run_in_executor(None, lambda: gw.wait(timeout=20))
    elapsed = time.monotonic() - t0
    check(rc == 0, f"the gateway exits 0 after the drain (got {rc})")
    check(2.5 <= elapsed <= 10, f"it waited for the silent client about MERIDIAN_GW_DRAIN_MS=3s ({elapsed:.1f} s)")
    raw.close()
    with open(log_path) as f:
        log = f.read()
    check("drained" in log and "connections=4" in log, "the log says 4 connections were drained")


async def reconnect(port, secret):
    """After the restart, a client reconnects (what a 1012 asks of it)."""
    url = f"ws://127.0.0.1:{port}/v1/driver?token={token('drv-drain-1', 'driver', secret)}"
    async with websockets.connect(url, open_timeout=10) as ws:
        # a message the gateway answers itself (no Kafka round trip): the new connection serves
        await ws.send(json.dumps({"type": "no-such-type", "ref": "r1"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return reply.get("type")


def ws_frame(text):
    """One masked client text frame (RFC 6455 5.2), for a payload under 126 bytes."""
    data = text.encode()
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def storm_client(port, tok, deadline):
    """Connect (retrying while nothing listens), upgrade, ask something the gateway answers
    itself. Returns 'served', 'refused <status>' or 'silent' (101, then no answer in 5 s)."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.005)
            continue
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET /v1/driver?token={tok} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status = head.split(b" ", 2)[1].decode()
            if status != "101":
                return f"refused {status}"
            writer.write(ws_frame(json.dumps({"type": "no-such-type", "ref": "s1"})))
            await writer.drain()
            try:
                first = await asyncio.wait_for(reader.readexactly(2), 5)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError):
                return "silent"
            return "served" if first[0] & 0x0f == 1 else f"frame {first[0]:#x}"
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            return "dropped"
        finally:
            writer.close()
    return "never connected"


async def named_protocol(port, tok, proto):
    """Upgrade naming Sec-WebSocket-Protocol proto: the status, and for a 101 whether the
    gateway then answers a message ('served') or not ('silent')."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /v1/driver?token={tok} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = head.split(b" ", 2)[1].decode()
        if status != "101":
            return status
        writer.write(ws_frame(json.dumps({"type": "no-such-type", "ref": "p1"})))
        try:
            await asyncio.wait_for(reader.readexactly(2), 3)
            return "101 served"
        except (asyncio.TimeoutError, asyncio.IncompleteReadError):
            return "101 silent"
    finally:
        writer.close()


async def storm(port, secret, n, start):
    """n apps hammer the port, then the gateway starts (start()): the outcome of each."""
    deadline = time.monotonic() + 60
    tasks = [asyncio.create_task(storm_client(port, token(f"drv-storm-{i}", "driver", secret), deadline))
             for i in range(n)]
    await asyncio.sleep(0.3)  # every client is retrying against the closed port
    proc = await asyncio.get_running_loop().run_in_executor(None, start)
    return proc, await asyncio.gather(*tasks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--root", required=True)
    args = ap.parse_args()
    for k in ("MERIDIAN_KAFKA_BROKERS", "MERIDIAN_REDIS_URL", "MERIDIAN_PG_DSN", "MERIDIAN_JWT_SECRET"):
        if not os.environ.get(k):
            print(f"FAIL: {k} is not set (run under scripts/test or source .run/env)")
            return 1
    port = int(os.environ.get("MERIDIAN_STACK_PORT_BASE", "15400")) + 82
    env = dict(os.environ, MERIDIAN_GATEWAY_PORT=str(port), MERIDIAN_GW_DRAIN_MS="3s",
               MERIDIAN_SERVICE_AREA=os.path.join(args.root, "data/roads/manhattan-boundary.geojson"))
    secret = os.environ["MERIDIAN_JWT_SECRET"]
    tmp = os.environ.get("TMPDIR", "/tmp")
    logs = [os.path.join(tmp, f"gw-drain-{os.getpid()}-{i}.log") for i in (1, 2, 3)]
    gw = gw2 = gw3 = None
    try:
        with open(logs[0], "w") as log:
            gw = start_gateway(args, env, log)
            check(http_status(port, "/readyz") == 200, "gateway ready")
            asyncio.run(drain(args, gw, port, secret, logs[0]))
        with open(logs[1], "w") as log:
            gw2 = start_gateway(args, env, log)
            kind = asyncio.run(reconnect(port, secret))
            check(kind == "error", f"a client reconnects to the restarted gateway and is served (answer: {kind})")
        # the gateway's other lws protocols are no WebSocket endpoints: bound to one (named
        # by the client, or by default while a gateway starts) an upgrade is refused, never
        # left open unauthenticated and unserved
        tok = token("drv-proto", "driver", secret)
        for proto, want in (("http", "400"), ("gw-kafka-wake", "400"), ("meridian", "101 served")):
            got = asyncio.run(named_protocol(port, tok, proto))
            check(got == want, f"an upgrade naming subprotocol {proto!r} gets {want} (got {got})")
        gw2.send_signal(signal.SIGTERM)
        gw2.wait(timeout=20)
        with open(logs[2], "w") as log:
            gw3, outcomes = asyncio.run(storm(port, secret, int(os.environ.get("STORM_N", "300")), lambda: start_gateway(args, env, log)))
        tally = {}
        for o in outcomes:
            tally[o.split(" ")[0]] = tally.get(o.split(" ")[0], 0) + 1
        print(f"storm of 300 apps at a gateway's start: {tally}")
        check(tally.get("served", 0) > 0 and tally.get("silent", 0) == 0 and
              tally.get("served", 0) + tally.get("refused", 0) == len(outcomes),
              f"a storm of apps at a gateway's start: each served or refused, none left on a silent WebSocket ({tally})")
    finally:
        for p in (gw, gw2, gw3):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(f"integration_gateway_drain: {passed} passed, {failed} failed (gateway logs: {' '.join(logs)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
