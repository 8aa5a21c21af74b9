#!/usr/bin/python3
"""integration_dispatch.py: rides end to end through the running stack (scripts/stack up:
gateway, two dispatch shards, trips, PostGIS, Redis, devkafka), with a WebSocket client no one
here wrote (Debian's python3-websockets), checked against what the clients receive and what
meridian-trips wrote in PostGIS (psql).

Scenarios (--part flows):  a full ride (one row in trips with every timestamp, its events in
order in trip_events); decline then a second driver, then the rider cancels; no driver; offer
expiry; a pickup near the shard border matched to a driver across it (halo); a driver en route
on shard 0 goes offline after the whole city moved to shard 1 (`meridianctl shards move`): his
status still reaches shard 0, which cancels the trip driver_offline (issue 12).
(--part load): 200 concurrent requests against 50 drivers over both shards (no driver ever
holds two overlapping offers or trips, checked from trip_events; every request ends in exactly
one final state); then kill -9 of dispatch shard 0 in the middle of a run of requests and its
restart (scripts/stack up): no request lost or left open, no driver double-booked; then the
same with Redis shut down (data lost) 0.6 s before the kill, so that the restarted shard can
only restore its open trips from dispatch-events.

(--part failover, docs/shards.md): `scripts/stack up --standby` starts a second process per
shard: it does not act (no command consumed, no event, the lease still the holder's) while
it reads pings; kill -9 of the holder, three times, and a request sent right after each
kill: the first offer comes from the standby, and the time from the kill to that offer is
measured (target < 10 s); a SIGSTOPped holder: the standby takes over, the ride goes on
with it, and after SIGCONT the old holder steps down (lease_lost), a late event of its
generation (written with gw_kafka_tool) is neither delivered by the gateway nor recorded
by trips, and its late claims (played with dsp_claim_tool through the real claim scripts)
are refused by Redis.

Needs .run/env in the environment. Prints ok/FAIL lines; exits 1 on any failure.
Usage: integration_dispatch.py --root SRC --part flows|load|failover [--kafka-tool T --claim-tool T]
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time

import websockets

passed = 0
failed = 0
RUN = f"{int(time.time()) % 1000000:06d}"  # ids unique per run


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
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "|", os.environ["MERIDIAN_PG_DSN"], "-c", q],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return [l.split("|") for l in out.stdout.splitlines() if l]


def redis_cli():
    """redis-cli as the stack's admin user (the services' user may not shut Redis down)."""
    url = os.environ.get("MERIDIAN_REDIS_ADMIN_URL") or os.environ["MERIDIAN_REDIS_URL"]
    return ["redis-cli", "--no-auth-warning", "-u", url]


def now_ms():
    return int(time.time() * 1000)


class Client:
    """One WebSocket client; messages are queued by type so a test can wait for one."""

    def __init__(self, sub, role):
        self.sub, self.role, self.msgs, self.ws, self.task = sub, role, [], None, None
        self.cond = None

    async def connect(self):
        base = os.environ["MERIDIAN_GATEWAY_URL"]
        self.ws = await websockets.connect(f"{base}/v1/{self.role}?token={token(self.sub, self.role)}",
                                           open_timeout=10, max_queue=None)
        self.cond = asyncio.Condition()
        self.task = asyncio.create_task(self._reader())
        return self

    async def _reader(self):
        try:
            async for raw in self.ws:
                m = json.loads(raw)
                async with self.cond:
                    self.msgs.append(m)
                    self.cond.notify_all()
        except websockets.exceptions.ConnectionClosed:
            pass

    async def send(self, **m):
        await self.ws.send(json.dumps(m))

    async def wait(self, pred, timeout=10.0):
        """The first queued message satisfying pred (removed from the queue), or None."""
        end = time.monotonic() + timeout
        async with self.cond:
            while True:
                for i, m in enumerate(self.msgs):
                    if pred(m):
                        return self.msgs.pop(i)
                left = end - time.monotonic()
                if left <= 0:
                    return None
                try:
                    await asyncio.wait_for(self.cond.wait(), left)
                except asyncio.TimeoutError:
                    return None

    async def close(self):
        await self.ws.close()
        if self.task:
            await self.task


def typ(t, **kw):
    return lambda m: m.get("type") == t and all(m.get(k) == v for k, v in kw.items())


class Driver(Client):
    def __init__(self, sub, lat, lon):
        super().__init__(sub, "driver")
        self.lat, self.lon, self.seq, self.pinger = lat, lon, 0, None

    async def online(self):
        await self.connect()
        await self.send(type="status", status="available")
        await self.ping()
        self.pinger = asyncio.create_task(self._pings())
        return self

    async def ping(self):
        self.seq += 1
        await self.send(type="location", lat=self.lat, lon=self.lon, ts=now_ms(), seq=self.seq)

    async def _pings(self):
        try:
            while True:
                await asyncio.sleep(2.0)
                await self.ping()
        except (asyncio.CancelledError, websockets.exceptions.ConnectionClosed):
            pass

    async def offline(self):
        if self.pinger:
            self.pinger.cancel()
        try:
            await self.send(type="status", status="offline")
            await asyncio.sleep(0.1)
        except websockets.exceptions.ConnectionClosed:
            pass
        await self.close()


async def visible(rider, lat, lon, timeout=8.0):
    """Wait until `nearby` (Redis hot cells) shows a driver at (lat, lon): dispatch has his ping."""
    end = time.monotonic() + timeout
    n = 0
    while time.monotonic() < end:
        n += 1
        await rider.send(type="nearby", lat=lat, lon=lon, radius_m=50, ref=f"nb{n}")
        m = await rider.wait(typ("nearby", ref=f"nb{n}"), 2)
        if m and any(abs(d["lat"] - lat) < 1e-4 and abs(d["lon"] - lon) < 1e-4 for d in m["drivers"]):
            await asyncio.sleep(0.3)  # the halo copy on the other shard too
            return True
        await asyncio.sleep(0.6)
    return False


async def wait_sql(q, pred, timeout=15.0):
    end = time.monotonic() + timeout
    rows = []
    while time.monotonic() < end:
        rows = sql(q)
        if pred(rows):
            return rows
        await asyncio.sleep(0.3)
    return rows


def types_of(trip):
    return [r[0] for r in sql(f"SELECT type FROM trip_events WHERE trip_id = '{trip}' ORDER BY seq")]


# ------------------------------------------------------------------------------ flows

async def full_ride():
    pickup, drop = (40.7075, -74.0113), (40.7130, -74.0060)
    d = await Driver(f"it-d1-{RUN}", 40.7082, -74.0110).online()
    r = await Client(f"it-r1-{RUN}", "rider").connect()
    check(await visible(r, d.lat, d.lon), "full ride: the driver shows in nearby (hot cells)")
    req = f"ride-{RUN}"
    await r.send(type="request", request_id=req, pickup={"lat": pickup[0], "lon": pickup[1]},
                 dropoff={"lat": drop[0], "lon": drop[1]}, ref="r1")
    check(await r.wait(typ("ack", ref="r1")) is not None, "full ride: request acked")
    off = await d.wait(typ("offer"))
    check(off is not None and off["request_id"] == req and off["pickup_eta_s"] > 0, "full ride: driver gets the offer")
    if not off:
        return
    trip = off["trip_id"]
    check(trip.startswith("t0-"), f"full ride: trip {trip} on shard 0 (lower Manhattan)")
    await d.send(type="accept", offer_id=off["offer_id"], ref="a1")
    m = await r.wait(typ("matched"))
    check(m is not None and m["driver_id"] == d.sub and m["trip_id"] == trip, "full ride: rider gets matched")
    for step, status in (("arrived", "arrived"), ("start", "started"), ("complete", "completed")):
        await d.send(type=step, trip_id=trip, ref=step)
        got = await r.wait(typ("trip", status=status))
        check(got is not None and got["trip_id"] == trip, f"full ride: rider sees {status}")
    rows = await wait_sql(f"SELECT status, driver_id, request_id, requested_at IS NOT NULL, offered_at IS NOT NULL, "
                          f"matched_at IS NOT NULL, arrived_at IS NOT NULL, started_at IS NOT NULL, "
                          f"completed_at IS NOT NULL, pickup_eta_s IS NOT NULL, route IS NOT NULL, "
                          f"fare_estimate_cents > 0, requested_at <= offered_at AND offered_at <= matched_at "
                          f"AND matched_at <= arrived_at AND arrived_at <= started_at AND started_at <= completed_at "
                          f"FROM trips WHERE trip_id = '{trip}'", lambda x: x and x[0][0] == "completed")
    check(len(rows) == 1, "full ride: one row in trips")
    if rows:
        check(rows[0][:3] == ["completed", d.sub, req], "full ride: row completed, with driver and request")
        check(all(v == "t" for v in rows[0][3:]), "full ride: every timestamp set and in order, ETA, route, fare")
    check(types_of(trip) == ["requested", "offered", "matched", "arrived", "started", "completed"],
          "full ride: trip_events in order with seq 1..6")
    await d.offline()
    await r.close()


async def resync_after_end():
    """A rider cut off while his trip ends (a gateway restart does that to every client) is
    shown its end when he connects again (trip:last:rider), and a driver reconnecting during
    a trip is shown the trip: the snapshots the load generator's simulated apps resync from."""
    pickup, drop = (40.7205, -74.0050), (40.7250, -74.0020)
    d = await Driver(f"it-d8-{RUN}", 40.7210, -74.0048).online()
    r = await Client(f"it-r8-{RUN}", "rider").connect()
    try:
        check(await visible(r, d.lat, d.lon), "resync: driver visible")
        await r.send(type="request", request_id=f"rsy-{RUN}", pickup={"lat": pickup[0], "lon": pickup[1]},
                     dropoff={"lat": drop[0], "lon": drop[1]})
        off = await d.wait(typ("offer"))
        check(off is not None, "resync: driver offered")
        if not off:
            return
        await d.send(type="accept", offer_id=off["offer_id"])
        check(await r.wait(typ("matched")) is not None, "resync: matched")
        # the driver's connection drops and comes back: his trip is shown at once
        d.pinger.cancel()
        await d.close()
        await d.connect()
        snap = await d.wait(typ("trip", trip_id=off["trip_id"]), 5)
        check(snap is not None and snap["status"] == "matched", "resync: reconnecting driver is shown his matched trip")
        await r.close()  # the rider is cut off; the trip ends meanwhile
        for step in ("arrived", "start", "complete"):
            await d.send(type=step, trip_id=off["trip_id"], ref=step)
            check(await d.wait(typ("trip", status={"arrived": "arrived", "start": "started",
                                                    "complete": "completed"}[step]), 5) is not None,
                  f"resync: {step} applied")
        # the final snapshot reaches Redis with dispatch's next flush (slow on a busy machine)
        port = os.environ["MERIDIAN_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
        for _ in range(40):
            got = subprocess.run(redis_cli() + ["--raw", "GET", f"trip:last:rider:{r.sub}"],
                                 capture_output=True, text=True).stdout.strip()
            if got == off["trip_id"]:
                break
            await asyncio.sleep(0.25)
        r.msgs.clear()  # only what the new connection brings
        await r.connect()
        end = await r.wait(typ("trip", trip_id=off["trip_id"]), 5)
        check(end is not None and end["status"] == "completed",
              "resync: the rider reconnecting after the end is shown it (trip completed)")
    finally:
        await d.offline()
        await r.close()


async def redis_restart_claims():
    """Redis restarts empty in a moment (between two of dispatch's writes): the shard's
    claim on a matched driver, his trip's snapshot and pointer are written again, so no other
    shard can claim him and a reconnecting app is shown its trip (the chaos replay found
    drivers double-booked across shards after such a restart)."""
    url = os.environ["MERIDIAN_REDIS_URL"]
    port = url.rsplit(":", 1)[1].split("/")[0]

    def rcli(*a):
        return subprocess.run(redis_cli() + ["--raw", *a],
                              capture_output=True, text=True).stdout.strip()
    d = await Driver(f"it-d9-{RUN}", 40.7300, -73.9950).online()
    r = await Client(f"it-r9-{RUN}", "rider").connect()
    try:
        check(await visible(r, d.lat, d.lon), "redis_restart: driver visible")
        await r.send(type="request", request_id=f"rrc-{RUN}", pickup={"lat": 40.7302, "lon": -73.9952},
                     dropoff={"lat": 40.7350, "lon": -73.9900})
        off = await d.wait(typ("offer"))
        check(off is not None, "redis_restart: driver offered")
        if not off:
            return
        await d.send(type="accept", offer_id=off["offer_id"])
        check(await r.wait(typ("matched")) is not None, "redis_restart: matched")
        owner = rcli("GET", f"claim:{d.sub}")
        check(owner.endswith(f":{off['trip_id']}:1") or off["trip_id"] in owner, f"redis_restart: claimed ({owner})")
        env = dict(os.environ)
        if "MERIDIAN_BUILD" not in env and "MERIDIAN_BIN_DIR" in env:
            env["MERIDIAN_BUILD"] = os.path.basename(os.path.dirname(env["MERIDIAN_BIN_DIR"].rstrip("/")))

        async def restart_empty(what):
            """scripts/stack restart redis, checked empty by a marker key."""
            rcli("SET", f"it-marker-{RUN}", "1")
            rs = subprocess.run([os.path.join(ROOT, "scripts", "stack"), "restart", "redis"], capture_output=True,
                                text=True, env=env)
            check(rs.returncode == 0 and rcli("EXISTS", f"it-marker-{RUN}") == "0", f"redis_restart: {what}")

        async def until_back(probe):
            """probe() every 0.25 s for 10 s: its first true value, or None."""
            for _ in range(40):
                await asyncio.sleep(0.25)
                got = probe()
                if got:
                    return got
            return None
        await restart_empty("Redis restarted empty (scripts/stack restart redis)")
        back = await until_back(lambda: rcli("GET", f"claim:{d.sub}") == owner
                                and rcli("GET", f"trip:active:driver:{d.sub}") == off["trip_id"]
                                and rcli("EXISTS", f"trip:snap:{off['trip_id']}") == "1")
        check(back is True, "redis_restart: the claim, the trip's pointer and snapshot are back without any new event")
        for step in ("arrived", "start", "complete"):
            await d.send(type=step, trip_id=off["trip_id"])
            await asyncio.sleep(0.3)
        check(await r.wait(typ("trip", status="completed")) is not None, "redis_restart: ride completed")
        # Redis restarts empty again after the end: the ended trip's snapshot and the rider's
        # pointer to it come back too, so that a rider cut off when it ended still learns it
        for _ in range(40):
            if rcli("GET", f"trip:last:rider:{r.sub}") == off["trip_id"]:
                break
            await asyncio.sleep(0.25)
        await r.close()
        await restart_empty("Redis restarted empty after the end")

        def ended_back():
            ttl = rcli("PTTL", f"trip:snap:{off['trip_id']}")
            return int(ttl) if rcli("GET", f"trip:last:rider:{r.sub}") == off["trip_id"] and ttl.isdigit() else None
        back = await until_back(ended_back)
        check(back is not None and 0 < back <= 600000,
              f"redis_restart: the ended trip's snapshot and trip:last are back, with what is left of their keep time ({back} ms)")
        r.msgs.clear()
        await r.connect()
        end = await r.wait(typ("trip", trip_id=off["trip_id"]), 5)
        check(end is not None and end["status"] == "completed",
              "redis_restart: the rider reconnecting after the restart is shown the end (trip completed)")
    finally:
        await d.offline()
        await r.close()


async def decline_then_second_and_cancel():
    pickup = (40.7336, -74.0027)
    d1 = await Driver(f"it-d2a-{RUN}", 40.7340, -74.0025).online()
    d2 = await Driver(f"it-d2b-{RUN}", 40.7355, -74.0020).online()
    r = await Client(f"it-r2-{RUN}", "rider").connect()
    try:
        await decline_body(d1, d2, r, pickup)
    finally:
        for d in (d1, d2):
            await d.offline()
        await r.close()


async def decline_body(d1, d2, r, pickup):
    check(await visible(r, d1.lat, d1.lon) and await visible(r, d2.lat, d2.lon), "decline: both drivers visible")
    req = f"decl-{RUN}"
    await r.send(type="request", request_id=req, pickup={"lat": pickup[0], "lon": pickup[1]},
                 dropoff={"lat": 40.7400, "lon": -73.9900})
    # whichever is sooner by road (one-way streets here) is offered first
    first = await asyncio.wait_for(asyncio.gather(d1.wait(typ("offer"), 5), d2.wait(typ("offer"), 5)), 10)
    offers = [(d, o) for d, o in zip((d1, d2), first) if o]
    check(len(offers) == 1, "decline: exactly one driver is offered first")
    if len(offers) != 1:
        return
    a, o1 = offers[0]
    b = d2 if a is d1 else d1
    await a.send(type="decline", offer_id=o1["offer_id"], ref="dc")
    o2 = await b.wait(typ("offer"))
    check(o2 is not None and o2["trip_id"] == o1["trip_id"] and o2["offer_id"] != o1["offer_id"],
          "decline: then the second driver gets the same trip")
    if not o2:
        return
    # the first driver answering his dead offer gets unknown_offer
    await a.send(type="accept", offer_id=o1["offer_id"], ref="late")
    e = await a.wait(typ("error", ref="late"))
    check(e is not None and e["code"] == "unknown_offer", "decline: accepting a declined offer -> unknown_offer")
    await b.send(type="accept", offer_id=o2["offer_id"])
    m = await r.wait(typ("matched"))
    check(m is not None and m["driver_id"] == b.sub, "decline: rider matched with the second driver")
    await r.send(type="cancel", request_id=req, ref="cx")
    c = await b.wait(typ("trip", status="cancelled"))
    check(c is not None and c.get("reason") == "rider", "cancel: the driver is told the rider cancelled")
    trip = o1["trip_id"]
    rows = await wait_sql(f"SELECT status, reason, driver_id, cancelled_at IS NOT NULL FROM trips WHERE trip_id = '{trip}'",
                          lambda x: x and x[0][0] == "cancelled")
    check(rows == [["cancelled", "rider", b.sub, "t"]], "cancel: row cancelled by the rider, second driver, cancelled_at set")
    check(types_of(trip) == ["requested", "offered", "offer_declined", "offered", "matched", "cancelled"],
          "decline + cancel: trip_events in order")


async def no_driver():
    r = await Client(f"it-r3-{RUN}", "rider").connect()
    req = f"nod-{RUN}"
    await r.send(type="request", request_id=req, pickup={"lat": 40.8677, "lon": -73.9212},
                 dropoff={"lat": 40.8600, "lon": -73.9300})
    m = await r.wait(typ("no_driver"), 15)
    check(m is not None and m["request_id"] == req, "no driver: rider gets no_driver")
    if m:
        rows = await wait_sql(f"SELECT status, reason FROM trips WHERE trip_id = '{m['trip_id']}'", lambda x: bool(x))
        check(rows == [["no_driver", "no_driver_nearby"]], "no driver: row no_driver, reason no_driver_nearby")
    await r.close()


def shards_cli(*args):
    """meridianctl shards ... (the stack's build): (rc, stdout, stderr)."""
    ctl = os.path.join(os.environ.get("MERIDIAN_BIN_DIR") or os.path.join(ROOT, "build", "asan", "bin"),
                       "meridianctl")
    p = subprocess.run([ctl, "shards", *args], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, MERIDIAN_LOG_LEVEL="warn"))
    return p.returncode, p.stdout, p.stderr


async def offline_on_shard_left_without_range():
    """Issue 12: a driver whose trip lives on a shard the map has left with no range (the whole
    city moved to the other shard) goes offline: his status must reach that shard too (the
    gateway sends status to every shard any epoch named), which cancels the trip
    driver_offline; sent to the current map's shards only, it would leave the trip en route
    with a driver who is gone."""
    rc, out, err = shards_cli("show", "--json")
    check(rc == 0, f"offline after a move: shards show ({err.strip()[:100]})")
    if rc != 0:
        return
    original = json.loads(out)["ranges"]
    other = next((r["shard"] for r in original if r["shard"] != 0), None)
    check(other is not None, f"offline after a move: a second shard owns ranges ({original})")
    if other is None:
        return
    pickup, drop = (40.7150, -74.0090), (40.7190, -74.0040)
    d = await Driver(f"it-d9-{RUN}", 40.7155, -74.0085).online()
    r = await Client(f"it-r9-{RUN}", "rider").connect()
    moved = False
    try:
        check(await visible(r, d.lat, d.lon), "offline after a move: driver visible")
        await r.send(type="request", request_id=f"off-{RUN}", pickup={"lat": pickup[0], "lon": pickup[1]},
                     dropoff={"lat": drop[0], "lon": drop[1]})
        off = await d.wait(typ("offer"))
        check(off is not None and off["trip_id"].startswith("t0-"), "offline after a move: offered by shard 0")
        if not off:
            return
        await d.send(type="accept", offer_id=off["offer_id"], ref="acc9")
        check(await r.wait(typ("matched")) is not None, "offline after a move: matched (en route)")
        rc, _, err = shards_cli("move", "--range", ":~", "--to", str(other))
        moved = rc == 0
        check(moved, f"offline after a move: the whole city moved to shard {other} ({err.strip()[-160:]})")
        await asyncio.sleep(1.0)  # the gateway learns the epoch by NOTIFY (ms) or its 1 s re-read
        await d.send(type="status", status="offline", ref="off9")
        check(await d.wait(typ("ack", ref="off9")) is not None, "offline after a move: status acked")
        c = await r.wait(typ("trip", status="cancelled"), 10)
        check(c is not None and c.get("trip_id") == off["trip_id"] and c.get("reason") == "driver_offline",
              f"offline after a move: shard 0 (no range left) cancelled the trip driver_offline ({c})")
        rows = await wait_sql(f"SELECT status, reason FROM trips WHERE trip_id = '{off['trip_id']}'",
                              lambda x: bool(x) and x[0][0] == "cancelled")
        check(rows == [["cancelled", "driver_offline"]], f"offline after a move: trips row {rows}")
    finally:
        if moved:
            ok = True
            for rg in original:
                rc, _, err = shards_cli("move", "--range", f"{rg['start']}:{rg['end']}", "--to", str(rg["shard"]))
                ok = ok and rc == 0
            rc, out, _ = shards_cli("show", "--json")
            check(ok and rc == 0 and json.loads(out)["ranges"] == original, "offline after a move: the map put back")
        await d.offline()
        await r.close()


async def offer_expiry():
    d = await Driver(f"it-d4-{RUN}", 40.7200, -73.9880).online()
    r = await Client(f"it-r4-{RUN}", "rider").connect()
    check(await visible(r, d.lat, d.lon), "expiry: driver visible")
    await r.send(type="request", request_id=f"exp-{RUN}", pickup={"lat": 40.7195, "lon": -73.9885},
                 dropoff={"lat": 40.7250, "lon": -73.9850})
    off = await d.wait(typ("offer"))
    check(off is not None, "expiry: driver offered")
    if not off:
        return
    t0 = time.monotonic()
    x = await d.wait(typ("trip", status="offer_expired"), 20)
    waited = time.monotonic() - t0
    check(x is not None and x.get("offer_id") == off["offer_id"], "expiry: driver told his offer expired")
    check(8.5 <= waited <= 13, f"expiry: after the 10 s offer timeout (waited {waited:.1f} s)")
    nd = await r.wait(typ("no_driver"), 10)
    check(nd is not None, "expiry: no one else near: rider gets no_driver")
    await d.send(type="accept", offer_id=off["offer_id"], ref="lateacc")
    e = await d.wait(typ("error", ref="lateacc"))
    check(e is not None and e["code"] == "unknown_offer", "expiry: accepting the expired offer -> unknown_offer")
    check(types_of(off["trip_id"])[:3] == ["requested", "offered", "offer_expired"], "expiry: events recorded")
    await d.offline()
    await r.close()


async def halo():
    # the shard border (dr5r | dr72) is at lat ~40.7812 here: pickup south (shard 0),
    # driver north (owned by shard 1, a halo copy on shard 0)
    d = await Driver(f"it-d5-{RUN}", 40.7822, -73.9800).online()
    r = await Client(f"it-r5-{RUN}", "rider").connect()
    check(await visible(r, d.lat, d.lon), "halo: driver visible")
    await r.send(type="request", request_id=f"halo-{RUN}", pickup={"lat": 40.7800, "lon": -73.9805},
                 dropoff={"lat": 40.7700, "lon": -73.9850})
    off = await d.wait(typ("offer"))
    check(off is not None and off["trip_id"].startswith("t0-") and off["offer_id"].startswith("o0-"),
          "halo: shard 0 offers the ride to a driver owned by shard 1")
    if off:
        await d.send(type="accept", offer_id=off["offer_id"])
        m = await r.wait(typ("matched"))
        check(m is not None and m["driver_id"] == d.sub, "halo: matched across the border")
        for step in ("arrived", "start", "complete"):
            await d.send(type=step, trip_id=off["trip_id"])
        done = await r.wait(typ("trip", status="completed"))
        check(done is not None, "halo: ride completed")
    await d.offline()
    await r.close()


async def pg_down():
    """PostgreSQL stops while a ride happens: trips stops committing, retries, and records
    the whole ride once the database is back; dispatch matches on regardless."""
    run_dir = os.environ.get("MERIDIAN_RUN_DIR") or os.path.join(os.path.abspath(ROOT), ".run")
    pg_data = f"/var/tmp/meridian-pg-{hashlib.md5(run_dir.encode()).hexdigest()[:12]}/data"
    pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl"
    opts = subprocess.run(["sh", "-c", f"cat {pg_data}/postmaster.opts"], capture_output=True, text=True).stdout
    if not opts:
        check(False, f"pg_down: cannot find the stack's PostgreSQL in {pg_data}")
        return
    d = await Driver(f"it-d6-{RUN}", 40.7450, -73.9880).online()
    r = await Client(f"it-r6-{RUN}", "rider").connect()
    try:
        check(await visible(r, d.lat, d.lon), "pg_down: driver visible")
        stop = subprocess.run(["runuser", "-u", "postgres", "--", pg_ctl, "-D", pg_data, "-m", "fast", "-w", "stop"],
                              capture_output=True, text=True)
        check(stop.returncode == 0, "pg_down: PostgreSQL stopped")
        req = f"pgd-{RUN}"
        await r.send(type="request", request_id=req, pickup={"lat": 40.7445, "lon": -73.9885},
                     dropoff={"lat": 40.7500, "lon": -73.9850})
        off = await d.wait(typ("offer"))
        check(off is not None, "pg_down: matching goes on without the database")
        if off:
            await d.send(type="accept", offer_id=off["offer_id"])
            for step in ("arrived", "start", "complete"):
                await asyncio.sleep(0.5)
                await d.send(type=step, trip_id=off["trip_id"])
            check(await r.wait(typ("trip", status="completed")) is not None, "pg_down: ride completed")
        await asyncio.sleep(2.0)  # trips retries meanwhile
        # restart with the options the stack used (port, socket dir, fsync)
        toks = shlex.split(opts.strip())[1:]
        keep = [t for i, t in enumerate(toks) if t != "-D" and (i == 0 or toks[i - 1] != "-D")]
        args = " ".join(keep)
        start = subprocess.run(["runuser", "-u", "postgres", "--", pg_ctl, "-D", pg_data, "-w", "-t", "60",
                                "-l", os.path.join(os.path.dirname(pg_data), "postgres.log"),
                                "-o", args, "start"], capture_output=True, text=True)
        check(start.returncode == 0, f"pg_down: PostgreSQL started again {start.stderr.strip()}")
        if off:
            rows = await wait_sql(f"SELECT status FROM trips WHERE trip_id = '{off['trip_id']}'",
                                  lambda x: x == [["completed"]], 30)
            check(rows == [["completed"]], "pg_down: trips caught up: the ride is recorded, completed")
            check(types_of(off["trip_id"]) == ["requested", "offered", "matched", "arrived", "started", "completed"],
                  "pg_down: every event recorded once, in order")
    finally:
        await d.offline()
        await r.close()


def metric(port, name):
    import urllib.request
    txt = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in txt.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def redis_down():
    """Redis stops after an offer: the decline, the next offer (its claim in memory), the
    accept and the ride go on; dispatch counts the fallback and, once Redis is back, writes
    the trip's snapshot and the hot cells it could not write meanwhile."""
    url = os.environ["MERIDIAN_REDIS_URL"]
    port = url.rsplit(":", 1)[1].split("/")[0]
    admin0 = int(os.environ["MERIDIAN_STACK_PORT_BASE"]) + 90  # ADMIN_BASE + 0: dispatch shard 0
    d1 = await Driver(f"it-d7a-{RUN}", 40.7270, -73.9940).online()
    d2 = await Driver(f"it-d7b-{RUN}", 40.7282, -73.9930).online()
    r = await Client(f"it-r7-{RUN}", "rider").connect()
    started = False
    try:
        check(await visible(r, d1.lat, d1.lon) and await visible(r, d2.lat, d2.lon), "redis_down: drivers visible")
        await r.send(type="request", request_id=f"rdd-{RUN}", pickup={"lat": 40.7275, "lon": -73.9938},
                     dropoff={"lat": 40.7350, "lon": -73.9900})
        first = await asyncio.gather(d1.wait(typ("offer"), 5), d2.wait(typ("offer"), 5))
        offers = [(d, o) for d, o in zip((d1, d2), first) if o]
        check(len(offers) == 1, "redis_down: one driver offered")
        if len(offers) != 1:
            return
        a, o1 = offers[0]
        b = d2 if a is d1 else d1
        fb0 = metric(admin0, "meridian_dispatch_claims_fallback_total") or 0
        subprocess.run(redis_cli() + ["shutdown", "nosave"], capture_output=True)
        started = True
        await asyncio.sleep(0.3)
        await a.send(type="decline", offer_id=o1["offer_id"])
        o2 = await b.wait(typ("offer"))
        check(o2 is not None and o2["trip_id"] == o1["trip_id"], "redis_down: the next driver is offered (claim in memory)")
        if not o2:
            return
        await b.send(type="accept", offer_id=o2["offer_id"])
        check(await r.wait(typ("matched")) is not None, "redis_down: matched")
        for step in ("arrived", "start", "complete"):
            await asyncio.sleep(0.5)
            await b.send(type=step, trip_id=o2["trip_id"])
        check(await b.wait(typ("trip", status="completed")) is not None, "redis_down: ride completed")
        fb1 = metric(admin0, "meridian_dispatch_claims_fallback_total") or 0
        await asyncio.sleep(1.1)  # metrics are synced every second
        fb1 = metric(admin0, "meridian_dispatch_claims_fallback_total") or 0
        check(fb1 > fb0, f"redis_down: claims answered from memory are counted ({fb0:.0f} -> {fb1:.0f})")
        check((metric(admin0, "meridian_dispatch_redis_up") or 0) == 0, "redis_down: redis_up gauge is 0")
        env = dict(os.environ)
        if "MERIDIAN_BUILD" not in env and "MERIDIAN_BIN_DIR" in env:
            env["MERIDIAN_BUILD"] = os.path.basename(os.path.dirname(env["MERIDIAN_BIN_DIR"].rstrip("/")))
        up = subprocess.run([os.path.join(ROOT, "scripts", "stack"), "up"], capture_output=True, text=True, env=env)
        check(up.returncode == 0, "redis_down: Redis started again (scripts/stack up)")
        started = False
        # the snapshot of the ended trip and the hot cells come back without any new event
        snap = None
        for _ in range(40):
            await asyncio.sleep(0.25)
            out = subprocess.run(redis_cli() + ["--raw", "EXISTS",
                                  f"trip:snap:{o2['trip_id']}"], capture_output=True, text=True).stdout.strip()
            pos = subprocess.run(redis_cli() + ["--raw", "GEOPOS",
                                  "drivers:available", b.sub], capture_output=True, text=True).stdout.strip()
            if out == "1" and pos:
                snap = True
                break
        check(snap is True, "redis_down: snapshot and hot cells written once Redis is back")
    finally:
        if started:
            env = dict(os.environ)
            if "MERIDIAN_BUILD" not in env and "MERIDIAN_BIN_DIR" in env:
                env["MERIDIAN_BUILD"] = os.path.basename(os.path.dirname(env["MERIDIAN_BIN_DIR"].rstrip("/")))
            subprocess.run([os.path.join(ROOT, "scripts", "stack"), "up"], capture_output=True, env=env)
        for d in (d1, d2):
            await d.offline()
        await r.close()


# ------------------------------------------------------------------------------ load

def overlaps_from_trip_events(drivers):
    """For each driver, his offers and trips as intervals from trip_events; True if any two overlap."""
    ids = ",".join(f"'{d}'" for d in drivers)
    rows = sql("SELECT trip_id, seq, type, coalesce(driver_id, ''), (extract(epoch from at) * 1000)::bigint "
               f"FROM trip_events WHERE trip_id IN (SELECT DISTINCT trip_id FROM trip_events WHERE driver_id IN ({ids})) "
               "ORDER BY trip_id, seq")
    by_trip = {}
    for trip, seq, t, drv, at in rows:
        by_trip.setdefault(trip, []).append((int(seq), t, drv, int(at)))
    # intervals (driver, start, end) per offer or trip
    intervals = []
    for trip, evs in by_trip.items():
        cur = None  # (driver, start)
        for seq, t, drv, at in evs:
            if t == "offered":
                cur = (drv, at)
            elif t in ("offer_declined", "offer_expired") and cur:
                intervals.append((cur[0], cur[1], at, trip))
                cur = None
            elif t in ("completed", "cancelled", "no_driver") and cur:
                intervals.append((cur[0], cur[1], at, trip))
                cur = None
        if cur:
            intervals.append((cur[0], cur[1], 1 << 62, trip))
    bad = []
    per = {}
    for d, s, e, trip in intervals:
        per.setdefault(d, []).append((s, e, trip))
    for d, iv in per.items():
        iv.sort()
        for a, b in zip(iv, iv[1:]):
            if b[0] < a[1]:
                bad.append((d, a, b))
    return bad


async def auto_driver(d, stop, accept_p=0.8):
    """Answer offers (accept with probability accept_p, else decline) and finish each trip,
    pacing control messages under the gateway's limit (2/s, burst 5)."""
    async def send(**m):
        ref = f"{m['type']}-{random.random():.9f}"
        for _ in range(20):  # unavailable: Redis down for a moment (kill_redis), retried
            await d.send(ref=ref, **m)
            a = await d.wait(lambda x: x.get("ref") == ref, 5)
            if not a or a.get("type") != "error" or a.get("code") not in ("rate_limited", "unavailable"):
                return a
            await asyncio.sleep(1.0)
        return None

    while not stop.is_set():
        off = await d.wait(typ("offer"), 0.5)
        if not off:
            continue
        try:
            if random.random() < accept_p:
                await send(type="accept", offer_id=off["offer_id"])
                m = await d.wait(lambda x: x.get("type") == "trip" and x.get("trip_id") == off["trip_id"] and
                                 x.get("status") in ("matched", "offer_expired", "cancelled"), 10)
                if m and m.get("status") == "matched":
                    for step in ("arrived", "start", "complete"):
                        await asyncio.sleep(0.5)
                        await send(type=step, trip_id=off["trip_id"])
            else:
                await send(type="decline", offer_id=off["offer_id"])
        except websockets.exceptions.ConnectionClosed:
            return


FINAL = ("completed", "cancelled", "no_driver")


async def run_requests(riders, reqs, spots, timeout):
    """Each rider sends one request at once; returns {request_id: final status seen}."""
    async def one(r, req, spot):
        await r.send(type="request", request_id=req, pickup={"lat": spot[0], "lon": spot[1]},
                     dropoff={"lat": spot[0] + 0.004, "lon": spot[1] + 0.002})
        m = await r.wait(lambda x: (x.get("type") in ("no_driver", "error")) or
                         (x.get("type") == "trip" and x.get("status") in ("completed", "cancelled")), timeout)
        if not m:
            return req, None
        if m["type"] == "error":
            print("  request refused:", req, m, flush=True)
            return req, "error:" + m["code"]
        return req, "no_driver" if m["type"] == "no_driver" else m["status"]
    res = await asyncio.gather(*(one(r, q, s) for r, q, s in zip(riders, reqs, spots)))
    return dict(res)


_RINGS = None


def in_area(lat, lon):
    """Even-odd test against the service area's rings (the gateway's rule)."""
    global _RINGS
    if _RINGS is None:
        with open(os.path.join(ROOT, "data", "roads", "manhattan-boundary.geojson")) as f:
            g = json.load(f)
        _RINGS = []
        for geom in g.get("geometries", []) or [ft["geometry"] for ft in g.get("features", [])]:
            polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
            for poly in polys:
                _RINGS.extend(poly)
    inside = False
    for ring in _RINGS:
        for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
    return inside


def spots_in_manhattan(n, seed, boxes=None):
    """n points inside the service area (150 m from its edge at least), alternating boxes."""
    rnd = random.Random(seed)
    # downtown/midtown (shard 0) and Harlem (shard 1)
    boxes = boxes or [((40.715, 40.775), (-74.000, -73.975)), ((40.790, 40.825), (-73.955, -73.935))]
    out = []
    while len(out) < n:
        (la0, la1), (lo0, lo1) = boxes[len(out) % len(boxes)]
        la, lo = round(rnd.uniform(la0, la1), 6), round(rnd.uniform(lo0, lo1), 6)
        if all(in_area(la + dy, lo + dx) for dy, dx in ((0, 0), (0.0014, 0), (-0.0014, 0), (0, 0.0018), (0, -0.0018))):
            out.append((la, lo))
    return out


async def concurrency(seed):
    n_drivers, n_req = 50, 200
    dspots = spots_in_manhattan(n_drivers, seed)
    drivers = [Driver(f"it-cd{i}-{RUN}", la, lo) for i, (la, lo) in enumerate(dspots)]
    await asyncio.gather(*(d.online() for d in drivers))
    riders = [Client(f"it-cr{i}-{RUN}", "rider") for i in range(n_req)]
    await asyncio.gather(*(r.connect() for r in riders))
    await asyncio.sleep(2.0)  # pings consumed on both shards
    stop = asyncio.Event()
    workers = [asyncio.create_task(auto_driver(d, stop)) for d in drivers]
    reqs = [f"cc{i}-{RUN}" for i in range(n_req)]
    res = await run_requests(riders, reqs, spots_in_manhattan(n_req, seed + 1), 60)
    stop.set()
    await asyncio.gather(*workers)
    ended = [v for v in res.values() if v in FINAL]
    print(f"concurrency: {n_req} requests, {len(ended)} ended: "
          f"{sum(v == 'completed' for v in res.values())} completed, "
          f"{sum(v == 'no_driver' for v in res.values())} no_driver", flush=True)
    check(len(ended) == n_req, "concurrency: every request ended (client side)")
    ids = ",".join(f"'{q}'" for q in reqs)
    rows = await wait_sql(f"SELECT request_id, status FROM trips WHERE request_id IN ({ids})",
                          lambda x: len(x) == n_req and all(s in FINAL for _, s in x), 20)
    check(len(rows) == n_req and all(s in FINAL for _, s in rows),
          f"concurrency: {len(rows)} rows in trips, all in a final state")
    check(all(res.get(q) == s for q, s in rows), "concurrency: each row's final state is what the rider saw")
    check(sum(s == "completed" for _, s in rows) >= n_drivers // 2, "concurrency: many rides completed")
    finals = sql("SELECT t.request_id, count(*) FILTER (WHERE e.type IN ('completed', 'cancelled', 'no_driver')) "
                 f"FROM trips t JOIN trip_events e USING (trip_id) WHERE t.request_id IN ({ids}) GROUP BY 1")
    check(len(finals) == n_req and all(c == "1" for _, c in finals),
          "concurrency: exactly one final event per request in trip_events")
    bad = overlaps_from_trip_events([d.sub for d in drivers])
    check(not bad, f"concurrency: no driver had two overlapping offers or trips ({len(bad)} overlaps)")
    for b in bad[:5]:
        print("  overlap:", b)
    await asyncio.gather(*(d.offline() for d in drivers))
    await asyncio.gather(*(r.close() for r in riders))


def pid_of(name):
    with open(os.path.join(os.environ.get("MERIDIAN_RUN_DIR") or os.path.join(os.path.abspath(ROOT), ".run"), "pid", f"svc-{name}")) as f:
        return int(f.read().strip())


async def kill_shard(seed, redis_down=False):
    """kill -9 of shard 0 mid-run; with redis_down, Redis is shut down (its data lost) 0.6 s
    before the kill, so the shard's last snapshots never reach it and the restarted shard
    (Redis empty) can only restore its open trips from dispatch-events."""
    tag = "kill_redis" if redis_down else "kill"
    k = "kz" if redis_down else "kk"
    n_drivers, n_req = 20, 40
    box0 = [((40.715, 40.770), (-74.000, -73.975))]
    dspots = spots_in_manhattan(n_drivers, seed + 2, box0)
    drivers = [Driver(f"it-{k}d{i}-{RUN}", la, lo) for i, (la, lo) in enumerate(dspots)]
    await asyncio.gather(*(d.online() for d in drivers))
    riders = [Client(f"it-{k}r{i}-{RUN}", "rider") for i in range(n_req)]
    await asyncio.gather(*(r.connect() for r in riders))
    await asyncio.sleep(2.0)
    stop = asyncio.Event()
    workers = [asyncio.create_task(auto_driver(d, stop, accept_p=0.9)) for d in drivers]
    reqs = [f"{k}{i}-{RUN}" for i in range(n_req)]
    spots = spots_in_manhattan(n_req, seed + 3, box0)

    async def staggered():
        out = {}
        async def one(i):
            await asyncio.sleep(i * gap_s)  # a run of requests over ~6 s (~5 s)
            out.update(await run_requests([riders[i]], [reqs[i]], [spots[i]], 75))
        await asyncio.gather(*(one(i) for i in range(n_req)))
        return out

    # redis_down: every request is in before Redis goes (the gateway refuses new ones while
    # it is down), and the kill comes while the latest ones are open
    gap_s = 0.12 if redis_down else 0.15
    run = asyncio.create_task(staggered())
    await asyncio.sleep(5.0 if redis_down else 2.5)
    if redis_down:
        port = os.environ["MERIDIAN_REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
        subprocess.run(redis_cli() + ["shutdown", "nosave"], capture_output=True)
        print(f"{tag}: Redis shut down (data lost), shard 0 goes on without it", flush=True)
        await asyncio.sleep(0.6)
    pid = pid_of("dispatch-0")
    os.kill(pid, signal.SIGKILL)
    print(f"{tag}: SIGKILL dispatch-0 (pid {pid}) mid-run", flush=True)
    await asyncio.sleep(1.0)
    env = dict(os.environ)
    if "MERIDIAN_BUILD" not in env and "MERIDIAN_BIN_DIR" in env:  # restart the same build
        env["MERIDIAN_BUILD"] = os.path.basename(os.path.dirname(env["MERIDIAN_BIN_DIR"].rstrip("/")))
    p = await asyncio.create_subprocess_exec(os.path.join(ROOT, "scripts", "stack"), "up",
                                             stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env)
    _, err = await p.communicate()
    check(p.returncode == 0 and pid_of("dispatch-0") != pid, f"{tag}: scripts/stack up restarted dispatch-0")
    admin0 = int(os.environ["MERIDIAN_STACK_PORT_BASE"]) + 90  # ADMIN_BASE + 0: dispatch shard 0
    restored = None
    for _ in range(20):
        restored = metric(admin0, "meridian_dispatch_restored_total")
        if restored is not None:
            break
        await asyncio.sleep(0.5)
    print(f"{tag}: restarted shard restored {restored} open trips", flush=True)
    res = await run
    stop.set()
    await asyncio.gather(*workers)
    ended = [v for v in res.values() if v in FINAL]
    for q, v in res.items():
        if v not in FINAL:
            print("  not ended:", q, v, sql(f"SELECT t.trip_id, t.status, e.seq, e.type, e.driver_id, e.at FROM trips t "
                                            f"JOIN trip_events e USING (trip_id) WHERE t.request_id = '{q}' ORDER BY e.seq"), flush=True)
    print(f"{tag}: {n_req} requests, {len(ended)} ended: {sum(v == 'completed' for v in res.values())} completed", flush=True)
    check(len(ended) == n_req, f"{tag}: every request ended for its rider")
    ids = ",".join(f"'{q}'" for q in reqs)
    rows = await wait_sql(f"SELECT request_id, status FROM trips WHERE request_id IN ({ids})",
                          lambda x: len(x) == n_req and all(s in FINAL for _, s in x), 20)
    check(len(rows) == n_req, f"{tag}: no request lost ({len(rows)} of {n_req} in trips)")
    check(all(s in FINAL for _, s in rows), f"{tag}: no trip left open in trips")
    finals = sql("SELECT t.request_id, count(*) FILTER (WHERE e.type IN ('completed', 'cancelled', 'no_driver')) "
                 f"FROM trips t JOIN trip_events e USING (trip_id) WHERE t.request_id IN ({ids}) GROUP BY 1")
    check(len(finals) == n_req and all(c == "1" for _, c in finals),
          f"{tag}: exactly one final event per request in trip_events")
    bad = overlaps_from_trip_events([d.sub for d in drivers])
    check(not bad, f"{tag}: no driver double-booked ({len(bad)} overlaps)")
    for b in bad[:5]:
        print("  overlap:", b)
    await asyncio.gather(*(d.offline() for d in drivers))
    await asyncio.gather(*(r.close() for r in riders))


# ------------------------------------------------------------------------------ failover

def run_dir():
    return os.environ.get("MERIDIAN_RUN_DIR") or os.path.join(os.path.abspath(ROOT), ".run")


def pid_file(name):
    try:
        with open(os.path.join(run_dir(), "pid", f"svc-{name}")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def admin_base():
    return int(os.environ["MERIDIAN_STACK_PORT_BASE"]) + 90


def stack_up(*args):
    env = dict(os.environ)
    if "MERIDIAN_BUILD" not in env and "MERIDIAN_BIN_DIR" in env:
        env["MERIDIAN_BUILD"] = os.path.basename(os.path.dirname(env["MERIDIAN_BIN_DIR"].rstrip("/")))
    return subprocess.run([os.path.join(ROOT, "scripts", "stack"), "up", *args], capture_output=True,
                          text=True, env=env)


def lease(shard):
    rows = sql(f"SELECT holder_pid, generation, expires_at > now() FROM shard_leases WHERE shard = {shard}")
    return (int(rows[0][0]), int(rows[0][1]), rows[0][2] == "t") if rows else (None, 0, False)


def port_of(pid, shard):
    """The admin port of the process pid of shard: ADMIN_BASE+k, or +20+k for the standby."""
    return admin_base() + shard + (20 if pid == pid_file(f"dispatch-{shard}-standby") else 0)


def lm(port, name, shard=0):
    return metric(port, f'{name}{{shard="{shard}"}}')


def log_of(pid, shard):
    name = f"dispatch-{shard}-standby" if pid == pid_file(f"dispatch-{shard}-standby") else f"dispatch-{shard}"
    with open(os.path.join(run_dir(), "log", f"svc-{name}.log")) as f:
        return f.read()


async def ride_steps(d, r, off, steps=("arrived", "start", "complete")):
    for step in steps:
        await d.send(type=step, trip_id=off["trip_id"], ref=step)
        await asyncio.sleep(0.5)
    return await r.wait(typ("trip", status="completed" if "complete" in steps else "started"), 10)


async def standby_does_not_act():
    up = stack_up("--standby")
    check(up.returncode == 0, "standby: scripts/stack up --standby started one standby per shard")
    if up.returncode != 0:
        print(up.stderr[-2000:], flush=True)
        return False
    sb = pid_file("dispatch-0-standby")
    holder, gen, alive = lease(0)
    check(sb is not None and holder == pid_file("dispatch-0") and alive,
          f"standby: the lease of shard 0 stays with the first process (pid {holder}, generation {gen}), not the standby (pid {sb})")
    sport = admin_base() + 20
    d = await Driver(f"it-sb-d-{RUN}", 40.7452, -73.9882).online()
    r = await Client(f"it-sb-r-{RUN}", "rider").connect()
    try:
        check(await visible(r, d.lat, d.lon), "standby: driver visible")
        await r.send(type="request", request_id=f"sb-{RUN}", pickup={"lat": 40.7445, "lon": -73.9885},
                     dropoff={"lat": 40.7500, "lon": -73.9850})
        off = await d.wait(typ("offer"))
        check(off is not None, "standby: the holder offers the ride")
        if off:
            await d.send(type="accept", offer_id=off["offer_id"])
            check(await r.wait(typ("matched")) is not None, "standby: matched")
            check(await ride_steps(d, r, off) is not None, "standby: ride completed")
            rows = await wait_sql(f"SELECT DISTINCT generation FROM trip_events WHERE trip_id = '{off['trip_id']}'",
                                  lambda x: len(x) >= 1, 10)
            check(rows == [[str(gen)]], f"standby: every event of the ride carries the holder's generation {gen} ({rows})")
        await asyncio.sleep(1.2)  # the standby's metrics are synced every second
        vals = {n: metric(sport, n) for n in ("meridian_dispatch_commands_total", "meridian_dispatch_events_total",
                                              "meridian_dispatch_hot_commands_total", "meridian_dispatch_pings_total")}
        check(vals["meridian_dispatch_commands_total"] == 0 and vals["meridian_dispatch_events_total"] == 0
              and vals["meridian_dispatch_hot_commands_total"] == 0,
              f"standby: consumed no command, produced no event, wrote no hot cell ({vals})")
        check((vals["meridian_dispatch_pings_total"] or 0) > 0, "standby: but reads the pings (a hot standby)")
        check(lm(sport, "meridian_shard_lease_held") == 0 and lm(admin_base(), "meridian_shard_lease_held") == 1,
              "standby: meridian_shard_lease_held is 0 on the standby, 1 on the holder")
        check("msg=standby" in log_of(sb, 0), "standby: logs that it waits for the holder's lease")
    finally:
        await d.offline()
        await r.close()
    return True


async def failover_round(n):
    """kill -9 of shard 0's holder; a request sent at once; the standby's offer timed."""
    holder, gen, _ = lease(0)
    other = pid_file("dispatch-0-standby") if holder == pid_file("dispatch-0") else pid_file("dispatch-0")
    d = await Driver(f"it-fo{n}-d-{RUN}", 40.7352, -74.0020).online()
    r = await Client(f"it-fo{n}-r-{RUN}", "rider").connect()
    took = None
    try:
        check(await visible(r, d.lat, d.lon), f"failover {n}: driver visible")
        await asyncio.sleep(2.5)  # a ping or two more: the standby's index has him too
        t0 = time.monotonic()
        os.kill(holder, signal.SIGKILL)
        await r.send(type="request", request_id=f"fo{n}-{RUN}", pickup={"lat": 40.7345, "lon": -74.0025},
                     dropoff={"lat": 40.7400, "lon": -73.9950}, ref="q")
        off = await d.wait(typ("offer"), 30)
        took = time.monotonic() - t0 if off else None
        new_holder, new_gen, alive = lease(0)
        check(off is not None, f"failover {n}: the request sent after the kill is offered")
        check(new_holder == other and new_gen == gen + 1 and alive,
              f"failover {n}: the standby (pid {other}) holds the lease, generation {gen} -> {new_gen}")
        if off:
            print(f"failover {n}: kill -9 of pid {holder} -> first offer by pid {other}: {took:.2f} s", flush=True)
            check(took < 10.0, f"failover {n}: kill -> first offer in {took:.2f} s (< 10 s)")
            rows = sql(f"SELECT generation FROM trip_events WHERE trip_id = '{off['trip_id']}' AND type = 'offered'")
            check(rows and rows[0][0] == str(new_gen), f"failover {n}: the offer carries generation {new_gen}")
            await d.send(type="accept", offer_id=off["offer_id"])
            check(await r.wait(typ("matched")) is not None, f"failover {n}: matched by the new holder")
            check(await ride_steps(d, r, off) is not None, f"failover {n}: ride completed")
    finally:
        await d.offline()
        await r.close()
    up = stack_up("--standby")  # the killed process comes back, as the standby now
    check(up.returncode == 0 and lease(0)[0] == other, f"failover {n}: the killed one restarted as a standby")
    return took


async def sigstop_fenced(kafka_tool, claim_tool):
    holder, gen, _ = lease(0)
    other = pid_file("dispatch-0-standby") if holder == pid_file("dispatch-0") else pid_file("dispatch-0")
    hport = port_of(holder, 0)
    d = await Driver(f"it-ss-d-{RUN}", 40.7270, -73.9940).online()
    r = await Client(f"it-ss-r-{RUN}", "rider").connect()
    stopped = False
    try:
        check(await visible(r, d.lat, d.lon), "sigstop: driver visible")
        req = f"ss-{RUN}"
        await r.send(type="request", request_id=req, pickup={"lat": 40.7275, "lon": -73.9938},
                     dropoff={"lat": 40.7350, "lon": -73.9900})
        off = await d.wait(typ("offer"))
        check(off is not None, f"sigstop: the holder (pid {holder}, generation {gen}) offers")
        if not off:
            return
        trip = off["trip_id"]
        await d.send(type="accept", offer_id=off["offer_id"])
        check(await r.wait(typ("matched")) is not None, "sigstop: matched")
        os.kill(holder, signal.SIGSTOP)
        stopped = True
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15 and lease(0)[0] != other:
            await asyncio.sleep(0.2)
        _, new_gen, _ = lease(0)
        check(lease(0)[0] == other and new_gen == gen + 1,
              f"sigstop: the standby took the lease of the stopped holder after {time.monotonic() - t0:.1f} s "
              f"(generation {new_gen})")
        # the ride goes on with the new holder (it restored the trip)
        await d.send(type="arrived", trip_id=trip, ref="arr")
        arr = await r.wait(typ("trip", status="arrived"), 10)
        check(arr is not None, "sigstop: 'arrived' is handled by the new holder")
        os.kill(holder, signal.SIGCONT)
        stopped = False
        await asyncio.sleep(2.5)
        check(lm(hport, "meridian_shard_lease_lost_total") == 1 and lm(hport, "meridian_shard_lease_held") == 0,
              "sigstop: after SIGCONT the old holder found its lease lost and stepped down (lease_lost_total 1, held 0)")
        check("msg=lease_lost" in log_of(holder, 0), "sigstop: the old holder logged lease_lost")
        check(lease(0)[0] == other, "sigstop: the lease stays with the new holder")
        # its late claims: refused by Redis (the fence is the new generation)
        url = os.environ["MERIDIAN_REDIS_URL"]
        port = url.rsplit(":", 1)[1].split("/")[0]
        fence = subprocess.run(redis_cli() + ["--raw", "GET", "dispatch:fence:0"],
                               capture_output=True, text=True).stdout.strip()
        claim = subprocess.run(redis_cli() + ["--raw", "GET", f"claim:{d.sub}"],
                               capture_output=True, text=True).stdout.strip()
        check(fence == str(new_gen), f"sigstop: dispatch:fence:0 is {fence}")
        check(claim.endswith(f"@{new_gen}"), f"sigstop: the driver's claim was adopted by the new holder ({claim})")
        owner = claim.rsplit("@", 1)[0]
        outs = [subprocess.run([claim_tool, op, url, "0", str(gen), drv, own], capture_output=True, text=True).stdout
                for op, drv, own in (("refresh", d.sub, owner), ("release", d.sub, owner),
                                     ("try", f"it-ss-x-{RUN}", f"0:t0-late-{RUN}:1"))]
        check(outs[0].startswith("lost") and outs[2].startswith("lost") and all("fenced=1" in o for o in outs),
              f"sigstop: the old generation's late claims are refused ({[o.split() for o in outs]})")
        after = subprocess.run(redis_cli() + ["--raw", "GET", f"claim:{d.sub}"],
                               capture_output=True, text=True).stdout.strip()
        check(after == claim, "sigstop: its late release did not free the driver")
        # its late event: neither delivered by the gateway nor recorded by trips
        gw = int(os.environ["MERIDIAN_GATEWAY_PORT"])
        tport = admin_base() + 40
        g0, t0f = metric(gw, "meridian_gateway_events_fenced_total") or 0, metric(tport, "meridian_trips_events_fenced_total") or 0
        bad = subprocess.run([kafka_tool, "event", os.environ["MERIDIAN_KAFKA_BROKERS"], "0", "cancelled", trip,
                              r.sub, d.sub, "5", str(gen), req], capture_output=True, text=True)
        check(bad.returncode == 0, f"sigstop: a late CANCELLED of generation {gen} written to dispatch-events")
        late = await r.wait(typ("trip", status="cancelled"), 3)
        check(late is None, "sigstop: the gateway did not deliver the stale generation's event")
        await asyncio.sleep(1.5)
        g1, t1f = metric(gw, "meridian_gateway_events_fenced_total") or 0, metric(tport, "meridian_trips_events_fenced_total") or 0
        check(g1 > g0 and t1f > t0f, f"sigstop: counted as fenced by the gateway ({g0:.0f} -> {g1:.0f}) and trips ({t0f:.0f} -> {t1f:.0f})")
        rows = sql(f"SELECT seq, generation FROM trip_events WHERE trip_id = '{trip}' AND seq >= 5")
        check(rows == [], f"sigstop: trips recorded no event of the stale generation ({rows})")
        # and the ride ends normally with the new holder
        done = await ride_steps(d, r, off, ("start", "complete"))
        check(done is not None, "sigstop: ride completed by the new holder")
        rows = await wait_sql(f"SELECT seq, type, generation FROM trip_events WHERE trip_id = '{trip}' ORDER BY seq",
                              lambda x: len(x) >= 6, 10)
        gens = [(int(q), t, int(g)) for q, t, g in rows]
        check([t for _, t, _ in gens] == ["requested", "offered", "matched", "arrived", "started", "completed"],
              f"sigstop: trip_events in order ({[t for _, t, _ in gens]})")
        check(all(g == gen for q, _, g in gens if q <= 3) and all(g == new_gen for q, _, g in gens if q >= 4),
              f"sigstop: events 1-3 by generation {gen}, 4-6 by {new_gen}")
    finally:
        if stopped:
            os.kill(holder, signal.SIGCONT)
        await d.offline()
        await r.close()


async def back_to_one_per_shard():
    """Stop the standbys (a holder among them releases: the other takes over at once)."""
    for shard in (0, 1):
        pid = pid_file(f"dispatch-{shard}-standby")
        if pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                    break
                await asyncio.sleep(0.1)
            os.remove(os.path.join(run_dir(), "pid", f"svc-dispatch-{shard}-standby"))
    ok = False
    for _ in range(100):
        if all(lease(k)[0] == pid_file(f"dispatch-{k}") and lease(k)[2] for k in (0, 1)):
            ok = True
            break
        await asyncio.sleep(0.1)
    check(ok, "cleanup: standbys stopped, each shard's lease back with dispatch-<k>")


async def failover(kafka_tool, claim_tool):
    try:
        if not await standby_does_not_act():
            return
        times = []
        for n in (1, 2, 3):
            times.append(await failover_round(n))
            await asyncio.sleep(0.5)
        ok = [t for t in times if t is not None]
        if ok:
            print(f"failover: kill -9 -> first offer by the standby: {', '.join(f'{t:.2f}' for t in ok)} s "
                  f"(max {max(ok):.2f} s)", flush=True)
        await sigstop_fenced(kafka_tool, claim_tool)
    finally:
        await back_to_one_per_shard()


async def main(part, seed):
    for var in ("MERIDIAN_GATEWAY_URL", "MERIDIAN_PG_DSN", "MERIDIAN_JWT_SECRET"):
        if var not in os.environ:
            check(False, f"{var} is set (source .run/env)")
            return
    if part == "failover":
        await failover(KAFKA_TOOL, CLAIM_TOOL)
    elif part == "flows":
        for scenario in (no_driver, full_ride, decline_then_second_and_cancel, halo, offer_expiry, pg_down,
                         redis_down, resync_after_end, redis_restart_claims,
                         offline_on_shard_left_without_range):
            try:
                await scenario()
            except Exception as e:  # a broken scenario fails, the others still run
                check(False, f"{scenario.__name__}: {e!r}")
            await asyncio.sleep(0.5)
    else:
        await concurrency(seed)
        await kill_shard(seed)
        await asyncio.sleep(1.0)
        await kill_shard(seed + 7, redis_down=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--part", choices=("flows", "load", "failover"), required=True)
    ap.add_argument("--kafka-tool")
    ap.add_argument("--claim-tool")
    a = ap.parse_args()
    ROOT = a.root
    KAFKA_TOOL, CLAIM_TOOL = a.kafka_tool, a.claim_tool
    seed = int(os.environ.get("SEED", int(time.time())))
    print(f"seed={seed} (SEED= to replay) run={RUN}", flush=True)
    random.seed(seed)
    asyncio.run(main(a.part, seed))
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed or not passed else 0)
