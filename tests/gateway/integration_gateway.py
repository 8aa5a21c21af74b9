#!/usr/bin/python3
"""integration_gateway.py: the gateway against the real stack, with a client no one here
wrote (Debian's python3-websockets). Registered in ctest as test_gateway_integration
(label integration). Needs .run/env in the environment (scripts/stack up) and starts its own
meridian-gateway on a free port of the stack's block, stopping it at the end.

Covers: 401 (missing, bad signature, expired, garbage) and 403 (role/endpoint mismatch),
?token= and Authorization: Bearer; a driver's location landing on the partition of its shard
(and a halo copy at the border), read back with librdkafka (gw_kafka_tool); a bad message
answered with error while the connection stays usable; a flood closed with 1008; an event
written to dispatch-events reaching the right connected client and no other; nearby answered
from Redis; /healthz, /readyz, /metrics. Prints a pass/fail count; exits 1 on any failure.
Usage: integration_gateway.py --gateway BIN --tool gw_kafka_tool --root SRC
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
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


def token(sub, role, secret, exp_in=3600, key=None):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": sub, "role": role, "exp": int(time.time()) + exp_in}).encode())
    sig = hmac.new((key or secret).encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(sig)}"


async def status_of(url, headers=None):
    try:
        async with websockets.connect(url, extra_headers=headers or {}, open_timeout=5):
            return 101
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


async def recv_json(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_auth(base, secret):
    check(await status_of(f"{base}/v1/driver") == 401, "no token -> 401")
    check(await status_of(f"{base}/v1/driver?token=abc.def.ghi") == 401, "garbage token -> 401")
    bad = token("drv-a", "driver", secret, key="not-the-secret")
    check(await status_of(f"{base}/v1/driver?token={bad}") == 401, "bad signature -> 401")
    old = token("drv-a", "driver", secret, exp_in=-10)
    check(await status_of(f"{base}/v1/driver?token={old}") == 401, "expired token -> 401")
    rider = token("rider-a", "rider", secret)
    driver = token("drv-a", "driver", secret)
    check(await status_of(f"{base}/v1/driver?token={rider}") == 403, "rider token on /v1/driver -> 403")
    check(await status_of(f"{base}/v1/rider", {"Authorization": f"Bearer {driver}"}) == 403,
          "driver token on /v1/rider -> 403")
    check(await status_of(f"{base}/v1/driver", {"Authorization": f"Bearer {driver}"}) == 101,
          "Bearer driver token -> 101")
    check(await status_of(f"{base}/v1/rider?token={rider}") == 101, "?token= rider -> 101")


async def test_bad_message_keeps_connection(base, secret):
    async with websockets.connect(f"{base}/v1/driver?token={token('drv-bad', 'driver', secret)}") as ws:
        await ws.send('{"type":"location","lat":"x","lon":1,"ts":1,"seq":1,"ref":"b1"}')
        m = await recv_json(ws)
        check(m.get("type") == "error" and m.get("code") == "bad_request" and m.get("field") == "lat"
              and m.get("ref") == "b1", f"bad field -> error naming it: {m}")
        await ws.send("{not json")
        m = await recv_json(ws)
        check(m.get("code") == "bad_request", f"invalid JSON -> bad_request: {m}")
        await ws.send(b"\x00\x01")
        m = await recv_json(ws)
        check(m.get("code") == "bad_request", f"binary message -> bad_request: {m}")
        await ws.send('{"type":"status","status":"offline","ref":"' + "x" * 5000 + '"}')
        m = await recv_json(ws)
        check(m.get("code") == "too_large", f"5 KiB message -> too_large: {m}")
        await ws.send('{"type":"location","lat":40.6782,"lon":-73.9442,"ts":1,"seq":2,"ref":"o1"}')
        m = await recv_json(ws)
        check(m.get("code") == "out_of_area" and m.get("ref") == "o1", f"Brooklyn -> out_of_area: {m}")
        await asyncio.sleep(1.0)  # six messages used the control bucket (2/s, burst 5)
        await ws.send('{"type":"status","status":"available","ref":"s1"}')
        m = await recv_json(ws)
        check(m == {"type": "ack", "ref": "s1"}, f"connection still usable: {m}")


async def test_location_partitions(base, secret, tool, brokers):
    reader = subprocess.Popen([tool, "locations", brokers, "6000"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    line = reader.stderr.readline()
    check(line.strip() == "ready", "locations reader ready")
    border = 40.78125
    async with websockets.connect(f"{base}/v1/driver?token={token('drv-loc', 'driver', secret)}") as ws:
        now = int(time.time() * 1000)
        # north of the border, far from it: shard 1 only
        await ws.send(json.dumps({"type": "location", "lat": border + 0.02, "lon": -73.95,
                                  "ts": now, "seq": 1, "ref": "l1"}))
        m = await recv_json(ws)
        check(m == {"type": "ack", "ref": "l1"}, f"location acked after delivery: {m}")
        # 150 m south of the border: owner 0 and a halo copy for 1
        await ws.send(json.dumps({"type": "location", "lat": border - 0.00135, "lon": -73.97,
                                  "ts": now + 1, "seq": 2, "ref": "l2"}))
        m = await recv_json(ws)
        check(m == {"type": "ack", "ref": "l2"}, f"border location acked: {m}")
    out, _ = reader.communicate(timeout=20)
    rows = [dict(kv.split("=", 1) for kv in l.split()) for l in out.splitlines() if "driver=drv-loc" in l]
    seq1 = [r for r in rows if r["seq"] == "1"]
    seq2 = sorted((r for r in rows if r["seq"] == "2"), key=lambda r: r["partition"])
    check(len(seq1) == 1 and seq1[0]["partition"] == "1" and seq1[0]["halo"] == "0"
          and seq1[0]["key"] == "drv-loc", f"north location on partition 1 only: {seq1}")
    check([(r["partition"], r["halo"], r["owner"]) for r in seq2] == [("0", "0", "0"), ("1", "1", "0")],
          f"border location on partition 0 plus halo copy on 1: {seq2}")


async def test_flood_closed_1008(base, secret):
    async with websockets.connect(f"{base}/v1/rider?token={token('rider-flood', 'rider', secret)}") as ws:
        limited = 0
        code = None
        try:
            for i in range(100):
                await ws.send('{"type":"nearby","lat":40.75,"lon":-73.99,"radius_m":500}')
            while True:
                m = await recv_json(ws, 5)
                if m.get("code") == "rate_limited":
                    limited += 1
        except websockets.exceptions.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
        check(limited >= 5, f"rate_limited answers before the close: {limited}")
        check(code == 1008, f"flooding rider closed with 1008 (got {code})")


async def test_event_delivery(base, secret, tool, brokers):
    r1 = await websockets.connect(f"{base}/v1/rider?token={token('rider-ev1', 'rider', secret)}")
    r2 = await websockets.connect(f"{base}/v1/rider?token={token('rider-ev2', 'rider', secret)}")
    d1 = await websockets.connect(f"{base}/v1/driver?token={token('drv-ev1', 'driver', secret)}")
    await asyncio.sleep(0.3)
    rc = subprocess.run([tool, "event", brokers, "7", "matched", "t1-it-ev", "rider-ev1", "drv-ev1"]).returncode
    check(rc == 0, "event written to dispatch-events")
    m = await recv_json(r1, 10)
    check(m.get("type") == "matched" and m.get("trip_id") == "t1-it-ev" and m.get("driver_id") == "drv-ev1",
          f"rider-ev1 got matched: {m}")
    m = await recv_json(d1, 10)
    check(m.get("type") == "trip" and m.get("status") == "matched", f"drv-ev1 got trip matched: {m}")
    try:
        other = await recv_json(r2, 1.5)
        check(False, f"rider-ev2 got nothing (got {other})")
    except asyncio.TimeoutError:
        check(True, "rider-ev2 got nothing")
    for ws in (r1, r2, d1):
        await ws.close()


def redis_cli():
    """redis-cli as the stack's admin user (the services' user may not do everything)."""
    url = os.environ.get("MERIDIAN_REDIS_ADMIN_URL") or os.environ["MERIDIAN_REDIS_URL"]
    return ["redis-cli", "--no-auth-warning", "-u", url]


async def test_nearby(base, secret, redis_url):
    subprocess.run(redis_cli() + ["GEOADD", "drivers:available",
                    "-73.9776", "40.7614", "drv-near", "-73.90", "40.85", "drv-far"],
                   check=True, capture_output=True)
    async with websockets.connect(f"{base}/v1/rider?token={token('rider-nb', 'rider', secret)}") as ws:
        await ws.send('{"type":"nearby","lat":40.758,"lon":-73.9855,"radius_m":1000,"ref":"n1"}')
        m = await recv_json(ws)
        pts = m.get("drivers", [])
        check(m.get("type") == "nearby" and m.get("ref") == "n1" and len(pts) == 1
              and abs(pts[0]["lat"] - 40.7614) < 1e-4, f"nearby from Redis: {m}")


def test_http(port):
    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
    st, body = get("/healthz")
    check(st == 200, "/healthz 200")
    st, body = get("/readyz")
    check(st == 200 and body.startswith("ready"), f"/readyz 200: {body.strip()}")
    st, body = get("/metrics")
    check(st == 200 and "meridian_gateway_connections" in body
          and 'meridian_gateway_errors_total{code="bad_request"}' in body
          and "meridian_gateway_kafka_produce_seconds_bucket" in body, "/metrics has the series")


async def test_burst_answers_in_order(base, secret, redis_url):
    """Answers released together (the acks of one Kafka delivery report, nearby answers)
    go out as several frames in one write: each must arrive as its own message, in order,
    whatever its length (7-bit and 16-bit frame lengths)."""
    async with websockets.connect(f"{base}/v1/driver?token={token('drv-burst', 'driver', secret)}") as ws:
        now = int(time.time() * 1000)
        for i in range(10):  # the driver bucket's burst
            await ws.send(json.dumps({"type": "location", "lat": 40.82 + i * 1e-5, "lon": -73.945,
                                      "ts": now + i, "seq": i + 1, "ref": f"burst{i}"}))
        got = [await recv_json(ws) for _ in range(10)]
        check(got == [{"type": "ack", "ref": f"burst{i}"} for i in range(10)],
              f"ten acks, one message each, in order: {got}")
    args = []
    for i in range(12):
        args += [str(-73.97 + i * 2e-4), "40.79", f"drv-nb{i}"]
    subprocess.run(redis_cli() + ["GEOADD", "drivers:available"] + args,
                   check=True, capture_output=True)
    async with websockets.connect(f"{base}/v1/rider?token={token('rider-burst', 'rider', secret)}") as ws:
        for i in range(5):  # the rider bucket's burst
            await ws.send('{"type":"nearby","lat":40.79,"lon":-73.969,"radius_m":400,"ref":"nb%d"}' % i)
        raw = [await asyncio.wait_for(ws.recv(), 5) for _ in range(5)]
        got = [json.loads(r) for r in raw]
        check([(m.get("type"), m.get("ref"), len(m.get("drivers", []))) for m in got]
              == [("nearby", f"nb{i}", 12) for i in range(5)] and all(len(r) > 125 for r in raw),
              f"five long nearby answers, whole and in order: {[(m.get('ref'), len(r)) for m, r in zip(got, raw)]}")
    subprocess.run(redis_cli() + ["ZREM", "drivers:available"]
                   + [f"drv-nb{i}" for i in range(12)], check=True, capture_output=True)


async def main_async(args, port, secret, brokers):
    base = f"ws://127.0.0.1:{port}"
    await test_auth(base, secret)
    await test_bad_message_keeps_connection(base, secret)
    await test_location_partitions(base, secret, args.tool, brokers)
    await test_burst_answers_in_order(base, secret, os.environ["MERIDIAN_REDIS_URL"])
    await test_flood_closed_1008(base, secret)
    await test_event_delivery(base, secret, args.tool, brokers)
    await test_nearby(base, secret, os.environ["MERIDIAN_REDIS_URL"])
    test_http(port)


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
    port = int(os.environ.get("MERIDIAN_STACK_PORT_BASE", "15400")) + 81  # next to the stack's gateway
    env = dict(os.environ, MERIDIAN_GATEWAY_PORT=str(port),
               MERIDIAN_SERVICE_AREA=os.path.join(args.root, "data/roads/manhattan-boundary.geojson"))
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"gw-it-{os.getpid()}.log"), "w")
    gw = subprocess.Popen([args.gateway], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        asyncio.run(main_async(args, port, os.environ["MERIDIAN_JWT_SECRET"],
                               os.environ["MERIDIAN_KAFKA_BROKERS"]))
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            rc = gw.wait(timeout=15)
        except subprocess.TimeoutExpired:
            gw.kill()
            rc = -9
        check(rc == 0, f"gateway exits 0 on SIGTERM (got {rc})")
        log.close()
    print(f"integration_gateway: {passed} passed, {failed} failed (gateway log: {log.name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
