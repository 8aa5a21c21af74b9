"""verdict.py: the chaos replay's checks, as pure functions over what the run left behind.

Input: the load generator's outcomes (request_id -> status the simulated rider ended with),
the rows of PostgreSQL `trips` and `trip_events` of the run's requests, the number of events
parked in the dead-letter topic, and per fault the seconds until the system served again.
Output: the report (a dict that becomes the JSON report) and one verdict line. No I/O here:
tools/chaos/chaos.py gathers the inputs, tests/chaos/test_chaos_verdict.py feeds it good and
bad inputs.

Targets (issue 13): 0 lost, 0 answered twice, 0 double-booked, 0 left open, every fault
recovered in under RECOVERY_TARGET_S.
"""

FINAL = ("completed", "cancelled", "no_driver")
CLIENT_FINAL = FINAL + ("refused",)  # refused: the gateway said no to the request itself (an error)
RECOVERY_TARGET_S = 15.0
INF = float("inf")


def lost_requests(outcomes, trips):
    """Requests with no final outcome: the rider never learned one (lost at the client), or
    he did and the durable record has no trip of that request in a final state (lost in the
    record). A request the gateway refused has no trip and is not lost."""
    final_in_pg = {t["request_id"] for t in trips if t["status"] in FINAL}
    at_client = sorted(q for q, st in outcomes.items() if st not in CLIENT_FINAL)
    in_record = sorted(q for q, st in outcomes.items() if st in FINAL and q not in final_in_pg)
    return at_client, in_record


def answered_twice(outcomes, trips, events):
    """Requests answered more than once: more than one trip for one request, more than one
    final event over its trips, or a final answer at the client other than the record's."""
    by_req, status_of = {}, {}
    for t in trips:
        by_req.setdefault(t["request_id"], []).append(t["trip_id"])
        status_of[t["trip_id"]] = t["status"]
    finals = {}
    for e in events:
        if e["type"] in FINAL:
            finals[e["trip_id"]] = finals.get(e["trip_id"], 0) + 1
    bad = {}
    for q, tids in by_req.items():
        if len(tids) > 1:
            bad[q] = f"{len(tids)} trips"
            continue
        n = sum(finals.get(t, 0) for t in tids)
        if n > 1:
            bad[q] = f"{n} final events"
            continue
        cl = outcomes.get(q)
        st = status_of[tids[0]]
        if cl in FINAL and st in FINAL and cl != st:
            bad[q] = f"rider told {cl}, recorded {st}"
    return bad


def double_booked(events):
    """Drivers with two offers or trips at once, from trip_events: an offer holds its driver
    from `offered` until it is declined, expires (its expires_at_ms, or the expiry event if
    sooner) or the trip ends; an accepted offer holds him until the trip ends. Returns a list
    of (driver, first interval, second interval)."""
    by_trip = {}
    for e in events:
        by_trip.setdefault(e["trip_id"], []).append(e)
    intervals = []
    for trip, evs in by_trip.items():
        evs.sort(key=lambda e: e["seq"])
        cur = None  # [driver, start_ms, expires_ms]
        for e in evs:
            t = e["type"]
            if t == "offered" and e.get("driver_id"):
                if cur:  # an offer replaced without its end recorded: end it at the new one
                    intervals.append((cur[0], cur[1], min(e["at_ms"], cur[2]), trip))
                cur = [e["driver_id"], e["at_ms"], e.get("expires_at_ms") or INF]
            elif t == "matched" and cur:
                cur[2] = INF
            elif t in ("offer_declined", "offer_expired") + FINAL and cur:
                intervals.append((cur[0], cur[1], min(e["at_ms"], cur[2]), trip))
                cur = None
        if cur:
            intervals.append((cur[0], cur[1], cur[2], trip))
    per = {}
    for d, s, e, trip in intervals:
        per.setdefault(d, []).append((s, e, trip))
    bad = []
    for d, iv in per.items():
        iv.sort()
        end, last = None, None
        for x in iv:
            if end is not None and x[0] < end and x[2] != last[2]:
                bad.append((d, last, x))
            if end is None or x[1] > end:
                end, last = x[1], x
    return bad


def left_open(trips):
    """Trips of the run whose row in `trips` is not in a final state."""
    return sorted(t["trip_id"] for t in trips if t["status"] not in FINAL)


def judge(outcomes, trips, events, dlq_events, faults):
    """The report and the verdict. faults: [{"fault": name, "recovered_s": seconds or None
    (never served again), ...}]. Returns (report dict, verdict line, ok)."""
    lost_c, lost_r = lost_requests(outcomes, trips)
    twice = answered_twice(outcomes, trips, events)
    booked = double_booked(events)
    opened = left_open(trips)
    slow = [f for f in faults if f.get("recovered_s") is None or f["recovered_s"] >= RECOVERY_TARGET_S]
    worst = max((f["recovered_s"] for f in faults if f.get("recovered_s") is not None), default=None)
    report = {
        "requests": len(outcomes),
        "final_at_client": {k: sum(1 for v in outcomes.values() if v == k) for k in CLIENT_FINAL},
        "lost": len(lost_c) + len(lost_r),
        "lost_at_client": lost_c[:20],
        "lost_in_record": lost_r[:20],
        "answered_twice": len(twice),
        "answered_twice_examples": dict(list(sorted(twice.items()))[:20]),
        "double_booked": len({b[0] for b in booked}),
        "double_booked_examples": [{"driver": d, "first": list(a), "second": list(b)} for d, a, b in booked[:20]],
        "left_open": len(opened),
        "left_open_examples": opened[:20],
        "dlq_events": dlq_events,
        "faults": faults,
        "recovery_target_s": RECOVERY_TARGET_S,
        "worst_recovery_s": worst,
    }
    fails = []
    if report["lost"]:
        fails.append(f"{report['lost']} lost")
    if twice:
        fails.append(f"{len(twice)} answered twice")
    if booked:
        fails.append(f"{report['double_booked']} drivers double-booked")
    if opened:
        fails.append(f"{len(opened)} trips left open")
    for f in slow:
        r = f.get("recovered_s")
        fails.append(f"{f['fault']} " + ("never recovered" if r is None else f"recovered in {r:.1f} s"))
    if not outcomes:
        fails.append("no request was made")
    if not faults:
        fails.append("no fault was injected")
    ok = not fails
    report["ok"] = ok
    head = "PASS" if ok else "FAIL"
    worst_s = "n/a" if worst is None else f"{worst:.1f}"
    line = (f"chaos verdict: {head} requests={len(outcomes)} lost={report['lost']} "
            f"answered_twice={len(twice)} double_booked={report['double_booked']} left_open={len(opened)} "
            f"dlq_events={dlq_events} faults={len(faults)} worst_recovery_s={worst_s} (target < {RECOVERY_TARGET_S:.0f})")
    if fails:
        line += ": " + "; ".join(fails)
    return report, line, ok
