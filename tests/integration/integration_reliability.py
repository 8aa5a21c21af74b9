#!/usr/bin/python3
"""integration_reliability.py: issue 13's "a poison event stops every trip from being
recorded", against the running stack (scripts/stack up: gateway, two dispatch shards, trips,
PostGIS, Redis, devkafka), with a WebSocket client no one here wrote (python3-websockets) and
dlq_tool (librdkafka through mrd_kafka) for what a client cannot send.

Idempotency of (rider, request_id) across shards and time:
  - the issue's repro: a rider re-sends his request_id with a pickup on the other shard: the
    gateway answers invalid_state (field request_id) and no second trip is made; the same
    request re-sent unchanged is acked and makes no other trip; his cancel reaches the shard
    that holds the request; PostgreSQL holds exactly one trip for it; trips keeps recording;
  - a resend that dispatch holds no trip for (it ended and was forgotten) is refused with
    invalid_state and makes no trip;
  - a retry whose key a gateway left unconfirmed (killed between setting the key and Kafka's
    delivery report: the first copy may never have reached dispatch; the chaos replay's
    finding) makes the trip, once: the key is confirmed on delivery, a further resend is
    acked and makes no other trip; a new request's key is confirmed once delivered;
  - the same request_id of two riders makes two trips (the id is the rider's);
  - an app that connects before Redis shows its trip's latest event (dispatch writes Redis
    after the event's delivery; the chaos replay's riders who never learned their trip
    completed) is shown that event, which the gateway kept when it went by: the trip's
    Redis keys are deleted after the rider saw its last event, and his next connection
    still opens with it.
Poison messages, one per consumer, each followed by a good one:
  - trips: a payload that is not a DispatchEvent, then an event PostgreSQL refuses (a second
    trip for one (rider, request_id): unique violation, the issue's poison), each followed by
    a good event: the good ones are recorded, the bad ones are in dispatch-events-dlq with
    consumer=trips and reason decode / constraint;
  - gateway: the same undecodable event is parked with consumer=gateway, and a good event
    after it reaches the connected rider;
  - dispatch: an undecodable command on shard 0's partition is parked with
    consumer=dispatch, and the rider's request after it is answered;
  - meridian_dlq_events_total{consumer,reason} counts them on each service's /metrics.
Prints ok/FAIL lines; exits 1 on any failure.
Usage: integration_reliability.py --tool DLQ_TOOL
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import websockets

passed = 0
failed = 0
RUN = f"{int(time.time() * 1000) % 100000000:08d}"  # ids unique per run
PICKUP_S0 = {"lat": 40.758, "lon": -73.9855}     # Times Square: shard 0
PICKUP_S1 = {"lat": 40.80, "lon": -73.95}        # Harlem: shard 1
DROPOFF = {"lat": 40.7484, "lon": -73.9857}


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("ok:", what, flush=True)
    else:
        failed += 1
        print("FAIL:", what, flush=True)


def b64(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def token(sub, role):
    secret = os.environ["MERIDIAN_JWT_SECRET"]
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    c = b64(json.dumps({"sub": sub, "role": role, "exp": int(time.time()) + 3600}).encode())
    sig = hmac.new(secret.encode(), f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64(sig)}"


def sql(q):
    dsn = os.environ.get("MERIDIAN_PG_ADMIN_DSN") or os.environ["MERIDIAN_PG_DSN"]
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "|", dsn, "-c", q],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return [l.split("|") for l in out.stdout.splitlines() if l]


def wait_sql(q, pred, timeout=15.0):
    end = time.time() + timeout
    rows = sql(q)
    while not pred(rows) and time.time() < end:
        time.sleep(0.2)
        rows = sql(q)
    return rows


def tool(*args, timeout=60):
    out = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True,
                         timeout=timeout)
    return out.returncode, out.stdout.strip(), out.stderr.strip()


def produce_raw(topic, partition, key, text):
    rc, out, err = tool("raw", BROKERS, topic, partition, key, text)
    m = re.match(r"offset=(\d+)", out)
    if rc != 0 or not m:
        raise RuntimeError(f"dlq_tool raw: {rc} {out} {err}")
    return int(m.group(1))


def produce_event(partition, typ, trip, rider, request, seq):
    rc, out, err = tool("event", BROKERS, partition, typ, trip, rider, request, seq)
    m = re.match(r"offset=(\d+)", out)
    if rc != 0 or not m:
        raise RuntimeError(f"dlq_tool event: {rc} {out} {err}")
    return int(m.group(1))


def parked(consumer, topic, partition, offset, timeout_ms=15000):
    rc, out, err = tool("find", BROKERS, consumer, topic, partition, offset, timeout_ms)
    return out if rc == 0 else None


def metric(url, consumer, reason):
    try:
        body = urllib.request.urlopen(url, timeout=5).read().decode()
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        print("metrics:", url, e)
        return -1
    pat = re.compile(r'^meridian_dlq_events_total\{(.*)\} (\d+)', re.M)
    for labels, v in pat.findall(body):
        if f'consumer="{consumer}"' in labels and f'reason="{reason}"' in labels:
            return int(v)
    return -1


class Client:
    def __init__(self, sub, role="rider"):
        self.sub, self.role, self.msgs, self.ws = sub, role, [], None

    async def __aenter__(self):
        url = f"{os.environ['MERIDIAN_GATEWAY_URL']}/v1/{self.role}?token={token(self.sub, self.role)}"
        self.ws = await websockets.connect(url)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def send(self, **msg):
        await self.ws.send(json.dumps(msg))

    async def wait(self, pred, timeout=10.0):
        """The first message (seen before or arriving within timeout) that pred accepts."""
        for m in self.msgs:
            if pred(m):
                self.msgs.remove(m)
                return m
        end = time.time() + timeout
        while time.time() < end:
            try:
                m = json.loads(await asyncio.wait_for(self.ws.recv(), end - time.time()))
            except asyncio.TimeoutError:
                break
            if pred(m):
                return m
            self.msgs.append(m)
        return None


def ack(ref):
    return lambda m: m.get("type") == "ack" and m.get("ref") == ref


def err(ref):
    return lambda m: m.get("type") == "error" and m.get("ref") == ref


def trip_of(request_id):
    return lambda m: m.get("type") == "trip" and m.get("request_id") == request_id


async def test_resend_other_shard():
    """The issue's repro, end to end."""
    rider, rid = f"rider-rel-{RUN}", f"X-{RUN}"
    async with Client(rider) as c:
        await c.send(type="request", request_id=rid, pickup=PICKUP_S0, dropoff=DROPOFF, ref="a")
        first = await c.wait(trip_of(rid))
        check(first is not None and first.get("trip_id", "").startswith("t0-"),
              f"first request: a trip on shard 0: {first}")
        trip_id = first.get("trip_id") if first else None
        await c.send(type="request", request_id=rid, pickup=PICKUP_S1, dropoff=DROPOFF, ref="b")
        e = await c.wait(lambda m: m.get("ref") == "b")
        check(e is not None and e.get("type") == "error" and e.get("code") == "invalid_state"
              and e.get("field") == "request_id",
              f"same request_id, pickup on the other shard -> invalid_state on request_id: {e}")
        await c.send(type="request", request_id=rid, pickup=PICKUP_S0, dropoff=DROPOFF, ref="c")
        a = await c.wait(ack("c"))
        check(a is not None, "the same request re-sent unchanged is acked")
        other = await c.wait(lambda m: m.get("type") == "trip" and m.get("request_id") == rid
                             and m.get("trip_id") != trip_id, timeout=1.5)
        check(other is None, f"... and makes no other trip: {other}")
        await c.send(type="cancel", request_id=rid, ref="d")
        r = await c.wait(lambda m: m.get("ref") == "d" and m.get("type") == "error", timeout=3)
        # the trip ended (no_driver) or is cancelled now: either way the cancel reached the
        # shard that holds the request (the other would say "no such request")
        check(r is None or "no such request" not in r.get("message", ""),
              f"the cancel reaches the shard holding the request: {r}")
    rows = wait_sql(f"SELECT trip_id FROM trips WHERE rider_id = '{rider}' AND request_id = '{rid}'",
                    lambda rows: len(rows) >= 1)
    time.sleep(1.0)  # a second trip, if any were made, would be recorded by now
    rows = sql(f"SELECT trip_id FROM trips WHERE rider_id = '{rider}' AND request_id = '{rid}'")
    check(len(rows) == 1 and rows[0][0] == trip_id,
          f"exactly one trip recorded for (rider, request_id): {rows}")


async def test_resend_forgotten():
    """A resend dispatch holds no trip for: refused, never a new trip. The key is set as the
    gateway would have set it for a request whose trip dispatch has since forgotten."""
    rider, rid = f"rider-fgt-{RUN}", f"F-{RUN}"
    value = "0|%.6f,%.6f;%.6f,%.6f" % (PICKUP_S0["lat"], PICKUP_S0["lon"], DROPOFF["lat"], DROPOFF["lon"])
    out = redis_cmd("SET", f"gw:req:{rider}:{rid}", value, "EX", "600")
    check(out == "OK", f"key set as for a forgotten trip: {out}")
    async with Client(rider) as c:
        await c.send(type="request", request_id=rid, pickup=PICKUP_S0, dropoff=DROPOFF, ref="f")
        e = await c.wait(lambda m: m.get("ref") == "f" and m.get("type") == "error")
        check(e is not None and e.get("code") == "invalid_state" and "ended" in e.get("message", ""),
              f"resend of a forgotten request -> invalid_state: {e}")
        t = await c.wait(trip_of(rid), timeout=1.5)
        check(t is None, f"... and no trip: {t}")
    time.sleep(0.5)
    rows = sql(f"SELECT count(*) FROM trips WHERE rider_id = '{rider}'")
    check(rows == [["0"]], f"nothing recorded for it: {rows}")


def redis_cmd(*args):
    url = os.environ["MERIDIAN_REDIS_ADMIN_URL"] if os.environ.get("MERIDIAN_REDIS_ADMIN_URL") \
        else os.environ["MERIDIAN_REDIS_URL"]
    out = subprocess.run(["redis-cli", "-u", url, "--no-auth-warning", *args], capture_output=True, text=True)
    return out.stdout.strip() + (f" (stderr: {out.stderr.strip()})" if out.stderr.strip() else "")


async def test_resend_unconfirmed():
    """The key as a gateway killed before the delivery report leaves it: a retry is a new
    request to the stored shard, not a resend refused as ended."""
    rider, rid = f"rider-unc-{RUN}", f"U-{RUN}"
    value = "0|%.6f,%.6f;%.6f,%.6f" % (PICKUP_S0["lat"], PICKUP_S0["lon"], DROPOFF["lat"], DROPOFF["lon"])
    key = f"gw:req:{rider}:{rid}"
    check(redis_cmd("SET", key, value + "*", "EX", "600") == "OK", "key set unconfirmed, as a killed gateway leaves it")
    async with Client(rider) as c:
        await c.send(type="request", request_id=rid, pickup=PICKUP_S0, dropoff=DROPOFF, ref="u1")
        a = await c.wait(lambda m: m.get("ref") == "u1")
        check(a is not None and a.get("type") == "ack", f"the retry is acked, not refused as ended: {a}")
        t = await c.wait(trip_of(rid))
        check(t is not None and t.get("trip_id", "").startswith("t0-"), f"... and makes the trip, on the stored shard: {t}")
        trip_id = t.get("trip_id") if t else None
        check(redis_cmd("GET", key) == value, f"the key is confirmed on delivery: {redis_cmd('GET', key)}")
        await c.send(type="request", request_id=rid, pickup=PICKUP_S0, dropoff=DROPOFF, ref="u2")
        a = await c.wait(ack("u2"))
        check(a is not None, "a further resend is acked")
        other = await c.wait(lambda m: m.get("type") == "trip" and m.get("request_id") == rid
                             and m.get("trip_id") != trip_id, timeout=1.5)
        check(other is None, f"... and makes no other trip: {other}")
        # a new request's key: set unconfirmed, confirmed once delivered (acked)
        rid2 = f"U2-{RUN}"
        await c.send(type="request", request_id=rid2, pickup=PICKUP_S0, dropoff=DROPOFF, ref="u3")
        a = await c.wait(ack("u3"))
        check(a is not None, "a new request is acked")
        got = redis_cmd("GET", f"gw:req:{rider}:{rid2}")
        for _ in range(20):
            if got == value:
                break
            time.sleep(0.1)
            got = redis_cmd("GET", f"gw:req:{rider}:{rid2}")
        check(got == value, f"a new request's key is confirmed once delivered: {got}")
    rows = wait_sql(f"SELECT trip_id FROM trips WHERE rider_id = '{rider}' AND request_id = '{rid}'",
                    lambda rows: len(rows) >= 1)
    time.sleep(1.0)
    rows = sql(f"SELECT trip_id FROM trips WHERE rider_id = '{rider}' AND request_id = '{rid}'")
    check(len(rows) == 1 and rows[0][0] == trip_id, f"exactly one trip recorded for it: {rows}")


async def test_snapshot_from_the_event_kept():
    rider, rid = f"rider-kept-{RUN}", f"K-{RUN}"
    last = None
    async with Client(rider) as c:
        await c.send(type="request", request_id=rid, pickup=PICKUP_S0, dropoff=DROPOFF, ref="k")
        first = await c.wait(trip_of(rid))
        check(first is not None, f"a trip for the request: {first}")
        trip_id = first.get("trip_id") if first else ""
        # every message of the trip until it is quiet for 3 s (no_driver comes within the
        # widening's retries; with a driver about, an offer that waits)
        while True:
            m = await c.wait(lambda m: m.get("trip_id") == trip_id, timeout=3.0)
            if m is None:
                break
            last = m
        last = last or first
    # Redis without the trip, as a connection in the window before dispatch's write sees it
    for key in (f"trip:active:rider:{rider}", f"trip:last:rider:{rider}", f"trip:snap:{trip_id}"):
        redis_cmd("DEL", key)
    async with Client(rider) as c:
        shown = await c.wait(lambda m: True, timeout=3.0)
    check(shown is not None and shown.get("trip_id") == trip_id and shown.get("type") == last.get("type")
          and shown.get("status") == last.get("status"),
          f"a connection opens with the trip's last event though Redis has none: {shown} (last seen: {last})")


async def test_same_id_two_riders():
    rid = f"S-{RUN}"
    trips = []
    for r in ("a", "b"):
        async with Client(f"rider-two{r}-{RUN}") as c:
            await c.send(type="request", request_id=rid, pickup=PICKUP_S0, dropoff=DROPOFF, ref="s")
            t = await c.wait(trip_of(rid))
            trips.append(t.get("trip_id") if t else None)
    check(all(trips) and trips[0] != trips[1], f"two riders, one request_id: two trips {trips}")
    rows = wait_sql(f"SELECT count(*) FROM trips WHERE request_id = '{rid}'", lambda r: r == [["2"]])
    check(rows == [["2"]], f"... both recorded: {rows}")


async def test_poison_events():
    """trips and gateway: an undecodable event, then an event PostgreSQL refuses, each
    followed by a good one."""
    part = 7
    rider, req = f"rider-poi-{RUN}", f"P-{RUN}"
    good1, dup, good2 = f"t0-poi{RUN}-1", f"t0-poi{RUN}-2", f"t0-poi{RUN}-3"
    async with Client(rider) as c:
        await asyncio.sleep(0.3)
        poison = produce_raw("dispatch-events", part, f"poison-{RUN}", f"not an event {RUN}")
        produce_event(part, "requested", good1, rider, req, 1)
        got = await c.wait(lambda m: m.get("type") == "trip" and m.get("trip_id") == good1)
        check(got is not None, f"gateway: the good event after the poison reaches the rider: {got}")
    rows = wait_sql(f"SELECT status FROM trips WHERE trip_id = '{good1}'", lambda r: len(r) == 1)
    check(rows == [["requested"]], f"trips: the good event after the poison is recorded: {rows}")
    found = parked("trips", "dispatch-events", part, poison)
    check(found is not None and "reason=decode" in found and f"not an event {RUN}" in found,
          f"trips: the poison is in dispatch-events-dlq (reason decode): {found}")
    found = parked("gateway", "dispatch-events", part, poison)
    check(found is not None and "reason=decode" in found,
          f"gateway: the poison is in dispatch-events-dlq (reason decode): {found}")
    # the poison: a second trip for one (rider, request_id) -> unique violation
    bad = produce_event(part, "requested", dup, rider, req, 1)
    produce_event(part, "requested", good2, rider, f"{req}-2", 1)
    rows = wait_sql(f"SELECT status FROM trips WHERE trip_id = '{good2}'", lambda r: len(r) == 1)
    check(rows == [["requested"]], f"trips: the good event after the refused one is recorded: {rows}")
    rows = sql(f"SELECT count(*) FROM trips WHERE trip_id = '{dup}'")
    check(rows == [["0"]], f"trips: the refused one is not: {rows}")
    found = parked("trips", "dispatch-events", part, bad)
    check(found is not None and "reason=constraint" in found and "trips_rider_request_key" in found,
          f"trips: the refused event is in dispatch-events-dlq (reason constraint): {found}")
    base = int(os.environ.get("MERIDIAN_STACK_PORT_BASE", "15400"))
    trips_url = f"http://127.0.0.1:{base + 130}/metrics"  # trips admin port: ADMIN_BASE (base+90) + 40, scripts/stack-services
    check(metric(trips_url, "trips", "decode") >= 1, "trips /metrics: decode counted")
    check(metric(trips_url, "trips", "constraint") >= 1, "trips /metrics: constraint counted")
    gw = os.environ["MERIDIAN_GATEWAY_URL"].replace("ws://", "http://")
    check(metric(f"{gw}/metrics", "gateway", "decode") >= 1, "gateway /metrics: decode counted")


async def test_poison_command():
    """dispatch: an undecodable command on shard 0's partition, then a rider's request."""
    rider, rid = f"rider-cmd-{RUN}", f"C-{RUN}"
    poison = produce_raw("dispatch-commands", 0, f"poison-{RUN}", f"not a command {RUN}")
    async with Client(rider) as c:
        await c.send(type="request", request_id=rid, pickup=PICKUP_S0, dropoff=DROPOFF, ref="q")
        t = await c.wait(trip_of(rid))
        check(t is not None and t.get("trip_id", "").startswith("t0-"),
              f"dispatch: the request after the poison is applied: {t}")
    found = parked("dispatch", "dispatch-commands", 0, poison)
    check(found is not None and "reason=decode" in found and f"not a command {RUN}" in found,
          f"dispatch: the poison is in dispatch-events-dlq (reason decode): {found}")
    base = int(os.environ.get("MERIDIAN_STACK_PORT_BASE", "15400"))
    check(metric(f"http://127.0.0.1:{base + 90}/metrics", "dispatch", "decode") >= 1,
          "dispatch /metrics: decode counted")


async def main():
    await test_resend_other_shard()
    await test_resend_forgotten()
    await test_resend_unconfirmed()
    await test_snapshot_from_the_event_kept()
    await test_same_id_two_riders()
    await test_poison_events()
    await test_poison_command()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    args = ap.parse_args()
    for var in ("MERIDIAN_GATEWAY_URL", "MERIDIAN_PG_DSN", "MERIDIAN_JWT_SECRET",
                "MERIDIAN_KAFKA_BROKERS", "MERIDIAN_REDIS_URL"):
        if not os.environ.get(var):
            print(f"FAIL: {var} is not set: run under scripts/test or after scripts/stack up")
            sys.exit(1)
    TOOL, BROKERS = args.tool, os.environ["MERIDIAN_KAFKA_BROKERS"]
    asyncio.run(main())
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
