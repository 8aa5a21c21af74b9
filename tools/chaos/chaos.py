"""chaos.py: the chaos replay (scripts/chaos). Runs meridian-loadgen's replay of real taxi
trips (2 dispatch shards, >= 1,000 simulated drivers) against the stack that scripts/stack
starts, while a schedule kills and restarts its parts; then checks what the run left
behind (tools/chaos/verdict.py) and prints a JSON report and, as the last line, the verdict.

Faults (each once in the short run, three times in --long):
  kill_dispatch_0, kill_dispatch_1, kill_gateway, kill_trips   kill -9 by pid file, restarted
                                                               at once by `scripts/stack restart`
  restart_redis      Redis stopped and started again: empty (no persistence)
  restart_postgres   PostgreSQL stopped (fast) and started again
  stop_dispatch_<k>  SIGSTOP for 20 s, then SIGCONT
Recovery: after each fault a probe asks for a ride on each shard (a fresh rider, a drop-off
off the road graph, so dispatch answers no_driver at once and no driver is involved) until
both riders get `no_driver` through the gateway and both trips are recorded, final, in
PostgreSQL: the whole path (gateway, Redis, Kafka, dispatch, trips, PostgreSQL) served.
The time from the fault (for a SIGSTOP: from the SIGCONT) to that moment is the fault's
recovery time. devkafka keeps everything in memory, so its restart is not among the faults.

Only processes the stack's pid files name are signalled: the stack this checkout started.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time

import verdict

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# probe pickups, one per shard of the stack's map (shard 0 south of 40.7813, shard 1 north)
PROBE_PICKUPS = {0: (40.7075, -74.0113), 1: (40.8050, -73.9500)}
PROBE_DROPOFF = (40.5000, -73.5000)  # the Atlantic: off the road graph, so no_driver at once
t_start = time.monotonic()


def log(msg):
    print(f"chaos [{time.monotonic() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)


def run_dir():
    return os.environ.get("MERIDIAN_RUN_DIR") or os.path.join(ROOT, ".run")


def load_env():
    env = {}
    with open(os.path.join(run_dir(), "env")) as f:
        for line in f:
            m = re.match(r"export (\w+)='(.*)'$", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    os.environ.update(env)


def stack(*args, check=True):
    p = subprocess.run([os.path.join(ROOT, "scripts", "stack"), *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"scripts/stack {' '.join(args)} failed: {p.stderr.strip()[-800:]}")
    return p


def pid_of(name):
    try:
        with open(os.path.join(run_dir(), "pid", name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def sql(q):
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", os.environ["MERIDIAN_PG_DSN"], "-c", q],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def b64(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def token(sub, role):
    secret = os.environ["MERIDIAN_JWT_SECRET"]
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    c = b64(json.dumps({"sub": sub, "role": role, "exp": int(time.time()) + 3600}).encode())
    sig = hmac.new(secret.encode(), f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64(sig)}"


# ---------------------------------------------------------------------------- probes

class Prober:
    """Asks for a ride on each shard until the whole path answers (see the module comment).
    A probe waits for its answer: a request the gateway acked is served when the shard is
    back, and that moment is the recovery; a refused one (`unavailable`: Redis down) or a
    connection that fails is tried again 0.3 s later with a fresh rider."""

    def __init__(self, run_id):
        self.run_id, self.n = run_id, 0

    async def attempt(self, shard, deadline):
        """One rider, one request: True once answered no_driver and recorded; False to retry."""
        import websockets
        self.n += 1
        rider, req = f"p{self.run_id}-{self.n}", f"probe{self.run_id}-{self.n}"
        lat, lon = PROBE_PICKUPS[shard]
        try:
            async with websockets.connect(f"{os.environ['MERIDIAN_GATEWAY_URL']}/v1/rider?token={token(rider, 'rider')}",
                                          open_timeout=2, close_timeout=1) as ws:
                await ws.send(json.dumps({"type": "request", "request_id": req, "ref": "p",
                                          "pickup": {"lat": lat, "lon": lon},
                                          "dropoff": {"lat": PROBE_DROPOFF[0], "lon": PROBE_DROPOFF[1]}}))
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    m = json.loads(await asyncio.wait_for(ws.recv(), left))
                    if m.get("type") == "error" and m.get("ref") == "p":
                        return False
                    if m.get("type") == "no_driver":
                        break
        except Exception:
            return False
        # recorded, final, in PostgreSQL (trips consumed it)
        while time.monotonic() < deadline:
            try:
                if sql(f"SELECT 1 FROM trips WHERE request_id = '{req}' AND status = 'no_driver'"):
                    return True
            except Exception:
                pass
            await asyncio.sleep(0.1)
        return False

    async def shard_served(self, shard, deadline):
        """The monotonic time the shard's probe was served, or None by the deadline."""
        while time.monotonic() < deadline:
            if await self.attempt(shard, deadline):
                return time.monotonic()
            await asyncio.sleep(0.3)
        return None

    async def until_served(self, since, limit_s=60.0):
        """Seconds from `since` (monotonic) until both shards' probes were served, or None."""
        done = await asyncio.gather(*(self.shard_served(k, since + limit_s) for k in PROBE_PICKUPS))
        if any(t is None for t in done):
            return None
        return max(done) - since


# ---------------------------------------------------------------------------- faults

def kill9(name):
    pid = pid_of(f"svc-{name}")
    if not pid:
        raise RuntimeError(f"no pid file for {name}")
    os.kill(pid, signal.SIGKILL)
    return pid


# The dispatch shards this replay restarts read back the last RESTORE_WINDOW of
# dispatch-events (every shard's: docs/dispatch.md, "Restart"). The replay runs 60x faster
# than the evening it replays, so the default 15 min of wall time would be 15 h of it: every
# event of the run, read again at each restart (tens of thousands late in --long), which
# under ASan on a busy machine alone outlasts the recovery target. 2 min of wall time is
# still 2 h of the evening, longer than any ride; older live trips come from their Redis
# snapshots as usual. Only the restarted processes get it (scripts/stack restart passes the
# environment on); an explicit MERIDIAN_DISPATCH_RESTORE_WINDOW wins.
RESTORE_WINDOW = "2m"


async def restart(name):
    os.environ.setdefault("MERIDIAN_DISPATCH_RESTORE_WINDOW", RESTORE_WINDOW)
    p = await asyncio.create_subprocess_exec(os.path.join(ROOT, "scripts", "stack"), "restart", name,
                                             stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await p.communicate()
    if p.returncode != 0:
        log(f"scripts/stack restart {name} failed: {err.decode()[-500:]}")


async def fault(kind, prober):
    """Inject one fault and wait until the system serves again. Returns the fault's record."""
    rec = {"fault": kind, "at_s": round(time.monotonic() - t_start, 1)}
    t0 = time.monotonic()
    if kind.startswith("kill_"):
        name = kind[len("kill_"):].replace("dispatch_", "dispatch-")
        rec["pid"] = kill9(name)
        log(f"{kind}: kill -9 {name} (pid {rec['pid']}), restarting it")
        await restart(name)
        rec["restarted_s"] = round(time.monotonic() - t0, 2)
    elif kind == "restart_redis":
        log("restart_redis: Redis stopped and started empty")
        await restart("redis")
        rec["restarted_s"] = round(time.monotonic() - t0, 2)
    elif kind == "restart_postgres":
        log("restart_postgres: PostgreSQL stopped and started again")
        await restart("postgres")
        rec["restarted_s"] = round(time.monotonic() - t0, 2)
    elif kind.startswith("stop_dispatch_"):
        name = "dispatch-" + kind.rsplit("_", 1)[1]
        pid = pid_of(f"svc-{name}")
        os.kill(pid, signal.SIGSTOP)
        log(f"{kind}: SIGSTOP {name} (pid {pid}) for 20 s")
        try:
            await asyncio.sleep(20)
        finally:
            os.kill(pid, signal.SIGCONT)
        log(f"{kind}: SIGCONT {name}")
        t0 = time.monotonic()  # recovery counts from the continue
        rec["stopped_s"] = 20
    else:
        raise ValueError(kind)
    rec["recovered_s"] = await prober.until_served(t0)
    if rec["recovered_s"] is not None:
        rec["recovered_s"] = round(rec["recovered_s"], 2)
    log(f"{kind}: served again after {rec['recovered_s']} s")
    return rec


SHORT = ["kill_dispatch_0", "kill_gateway", "kill_trips", "kill_dispatch_1", "restart_redis",
         "restart_postgres", "stop_dispatch_0"]
LONG = SHORT + ["stop_dispatch_1"] + SHORT[:6] + ["stop_dispatch_1"] + SHORT[:6] + ["stop_dispatch_0"]


# ---------------------------------------------------------------------------- the run

def dlq_count():
    """Events parked in the dead-letter topic (0 when the topic does not exist)."""
    try:
        out = subprocess.run(["kcat", "-b", os.environ["MERIDIAN_KAFKA_BROKERS"], "-C", "-t", "dispatch-events-dlq",
                              "-o", "beginning", "-e", "-q", "-f", "x\n"], capture_output=True, text=True, timeout=30)
        return out.stdout.count("x\n") if out.returncode == 0 else 0
    except (OSError, subprocess.TimeoutExpired):
        return 0


def gather(run_id, outcomes_path):
    outcomes = {}
    with open(outcomes_path) as f:
        next(f)
        for line in f:
            q, _trip, st = line.strip().split(",")
            outcomes[q] = st
    like = f"q{run_id}-%"
    trips = [{"trip_id": a, "request_id": b, "status": c}
             for a, b, c in sql(f"SELECT trip_id, request_id, status FROM trips WHERE request_id LIKE '{like}'")]
    drivers_like = f"d{run_id}-%"
    rows = sql("SELECT trip_id, seq, type, coalesce(driver_id, ''), (extract(epoch from at) * 1000)::bigint, "
               "coalesce(payload->>'expires_at_ms', '') FROM trip_events WHERE trip_id IN "
               f"(SELECT trip_id FROM trips WHERE request_id LIKE '{like}') OR trip_id IN "
               f"(SELECT DISTINCT trip_id FROM trip_events WHERE driver_id LIKE '{drivers_like}')")
    events = [{"trip_id": t, "seq": int(s), "type": ty, "driver_id": d or None, "at_ms": int(at),
               "expires_at_ms": int(x) if x else None} for t, s, ty, d, at, x in rows]
    return outcomes, trips, events


async def main_async(a):
    run_id = a.run_id or f"c{int(time.time()) % 10**8}"
    os.makedirs(a.out, exist_ok=True)
    schedule = LONG if a.long else SHORT
    duration = a.duration or (a.gap * len(schedule) + 20 * sum(k.startswith("stop_") for k in schedule) + 20)
    load_env()
    bin_dir = os.environ["MERIDIAN_BIN_DIR"]
    lg_err = open(os.path.join(a.out, "loadgen.log"), "w")
    outcomes_path = os.path.join(a.out, "outcomes.csv")
    cmd = [os.path.join(bin_dir, "meridian-loadgen"), "replay", "--trips", os.path.join(ROOT, "data/trips/nyc-taxi-10k.csv"),
           "--drivers", str(a.drivers), "--speedup", str(a.speedup), "--duration", str(duration),
           "--start", "18:00", "--ping-max-hz", "0.5", "--seed", str(a.seed), "--run-id", run_id,
           "--json", os.path.join(a.out, "loadgen.json"), "--outcomes", outcomes_path, "--drain", str(a.drain)]
    log(f"run {run_id}: {a.drivers} drivers, {len(schedule)} faults every {a.gap:.0f} s, replay of {duration:.0f} s "
        f"at {a.speedup:g}x (18:00 onwards)")
    lg = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL, stderr=lg_err, cwd=ROOT)
    # the replay clock starts once the drivers are connected: wait for it
    t_wait = time.monotonic()
    while time.monotonic() - t_wait < 60:
        await asyncio.sleep(1)
        with open(os.path.join(a.out, "loadgen.log")) as f:
            txt = f.read()
        m = re.findall(r"requested (\d+)", txt)
        if m or lg.returncode is not None:
            break
    prober = Prober(run_id)
    base = await prober.until_served(time.monotonic(), 30)
    log(f"before the faults: the system serves (probe {base and round(base, 2)} s)")
    faults = []
    await asyncio.sleep(a.gap / 2)
    for kind in schedule:
        t0 = time.monotonic()
        if lg.returncode is not None:
            log("the load generator ended early")
            break
        faults.append(await fault(kind, prober))
        left = a.gap - (time.monotonic() - t0)
        if left > 0:
            await asyncio.sleep(left)
    log("faults done; waiting for the replay and its drain")
    rc = await lg.wait()
    lg_err.close()
    if rc != 0:
        log(f"meridian-loadgen exited {rc} (see {a.out}/loadgen.log)")
    # trips records what dispatch emitted: give it time to catch up with the last events
    like = f"q{run_id}-%"
    for _ in range(60):
        open_n = sql(f"SELECT count(*) FROM trips WHERE request_id LIKE '{like}' AND status NOT IN "
                     "('completed', 'cancelled', 'no_driver')")
        if open_n and open_n[0][0] == "0":
            break
        await asyncio.sleep(0.5)
    outcomes, trips, events = gather(run_id, outcomes_path) if rc == 0 else ({}, [], [])
    report, line, ok = verdict.judge(outcomes, trips, events, dlq_count(), faults)
    report["run_id"] = run_id
    report["mode"] = "long" if a.long else "short"
    report["replay"] = {"drivers": a.drivers, "speedup": a.speedup, "duration_s": duration, "start": "18:00",
                        "seed": a.seed, "loadgen_exit": rc}
    try:
        with open(os.path.join(a.out, "loadgen.json")) as f:
            lgj = json.load(f)
        report["loadgen"] = {k: lgj.get(k) for k in ("requested", "matched", "no_driver", "cancelled", "completed",
                                                      "connections", "errors", "match_latency_ms")}
    except (OSError, ValueError):
        pass
    report["wall_s"] = round(time.monotonic() - t_start, 1)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    print(line, flush=True)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(prog="scripts/chaos", description="chaos replay: faults during a taxi replay")
    ap.add_argument("--long", action="store_true", help="every fault three times (about 8 min)")
    ap.add_argument("--drivers", type=int, default=1000)
    ap.add_argument("--speedup", type=float, default=60)
    ap.add_argument("--gap", type=float, default=14.0, help="seconds between faults")
    ap.add_argument("--duration", type=float, default=0, help="replay wall seconds (default: the schedule's)")
    ap.add_argument("--drain", type=float, default=90, help="wall seconds at most for trips to end afterwards")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--run-id", default="")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "chaos"))
    a = ap.parse_args()
    if a.drivers < 1:
        ap.error("--drivers must be >= 1")
    return asyncio.run(main_async(a))


if __name__ == "__main__":
    sys.exit(main())
