"""test_chaos_verdict.py: the chaos replay's verdict (tools/chaos/verdict.py) on a clean run
and on runs that break each target: a lost request (at the client and in the record), a
request answered twice (two trips, two final events, a rider told otherwise), a driver
double-booked (overlapping offers across shards; an expired offer that does not overlap),
a trip left open, a fault that never recovered or too slowly. Run by ctest (label unit)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "chaos"))
import verdict  # noqa: E402


def ev(trip, seq, typ, at, driver=None, expires=None):
    e = {"trip_id": trip, "seq": seq, "type": typ, "at_ms": at, "driver_id": driver}
    if expires is not None:
        e["expires_at_ms"] = expires
    return e


def clean():
    outcomes = {"q1": "completed", "q2": "no_driver", "q3": "cancelled", "q4": "refused"}
    trips = [{"trip_id": "t0-a", "request_id": "q1", "status": "completed"},
             {"trip_id": "t1-b", "request_id": "q2", "status": "no_driver"},
             {"trip_id": "t0-c", "request_id": "q3", "status": "cancelled"}]
    events = [ev("t0-a", 1, "requested", 0), ev("t0-a", 2, "offered", 10, "d1", 10010),
              ev("t0-a", 3, "matched", 20, "d1"), ev("t0-a", 4, "arrived", 30, "d1"),
              ev("t0-a", 5, "started", 40, "d1"), ev("t0-a", 6, "completed", 50, "d1"),
              ev("t1-b", 1, "requested", 0), ev("t1-b", 2, "no_driver", 5),
              ev("t0-c", 1, "requested", 60), ev("t0-c", 2, "offered", 60, "d1", 10060),
              ev("t0-c", 3, "cancelled", 70, "d1")]
    faults = [{"fault": "kill_dispatch_0", "recovered_s": 3.5}]
    return outcomes, trips, events, faults


class Verdict(unittest.TestCase):
    def test_clean_run_passes_with_verdict_last(self):
        rep, line, ok = verdict.judge(*clean()[:3], 0, clean()[3])
        self.assertTrue(ok, line)
        self.assertTrue(line.startswith("chaos verdict: PASS"))
        self.assertEqual((rep["lost"], rep["answered_twice"], rep["double_booked"], rep["left_open"]), (0, 0, 0, 0))
        self.assertEqual(rep["worst_recovery_s"], 3.5)

    def test_request_without_final_outcome_is_lost(self):
        o, t, e, f = clean()
        o["q5"] = "matched"  # the rider never heard the end
        o["q1"] = "completed"
        t[0]["status"] = "started"  # and the record never got it
        rep, line, ok = verdict.judge(o, t, e, 0, f)
        self.assertFalse(ok)
        self.assertEqual(rep["lost_at_client"], ["q5"])
        self.assertEqual(rep["lost_in_record"], ["q1"])
        self.assertEqual(rep["lost"], 2)
        self.assertIn("2 lost", line)
        self.assertEqual(rep["left_open"], 1)

    def test_two_trips_or_two_finals_or_another_answer_is_answered_twice(self):
        o, t, e, f = clean()
        t.append({"trip_id": "t1-z", "request_id": "q1", "status": "no_driver"})  # second trip
        e.append(ev("t1-b", 3, "no_driver", 9))  # second final event
        o["q3"] = "completed"  # told completed, recorded cancelled
        rep, line, ok = verdict.judge(o, t, e, 0, f)
        self.assertFalse(ok)
        self.assertEqual(sorted(rep["answered_twice_examples"]), ["q1", "q2", "q3"])
        self.assertIn("3 answered twice", line)

    def test_overlapping_offers_double_book_a_driver(self):
        o, t, e, f = clean()
        # d1 is offered t9-x by the other shard while he is on t0-a (10..50)
        e += [ev("t9-x", 1, "requested", 20), ev("t9-x", 2, "offered", 30, "d1", 10030),
              ev("t9-x", 3, "offer_expired", 10030, "d1")]
        rep, line, ok = verdict.judge(o, t, e, 0, f)
        self.assertFalse(ok)
        self.assertEqual(rep["double_booked"], 1)
        self.assertEqual(rep["double_booked_examples"][0]["driver"], "d1")

    def test_offer_ends_at_its_expiry_even_when_recorded_late(self):
        o, t, e, f = clean()
        # a stopped shard records the expiry of d2's offer 20 s late; another shard offered
        # d2 after the offer's expires_at: no overlap
        e += [ev("t0-s", 1, "requested", 1000), ev("t0-s", 2, "offered", 1000, "d2", 11000),
              ev("t0-s", 3, "offer_expired", 21000, "d2"),
              ev("t1-u", 1, "requested", 12000), ev("t1-u", 2, "offered", 12000, "d2", 22000),
              ev("t1-u", 3, "matched", 13000, "d2"), ev("t1-u", 4, "cancelled", 15000, "d2")]
        rep, line, ok = verdict.judge(o, t, e, 0, f)
        self.assertEqual(rep["double_booked"], 0, line)

    def test_slow_or_missing_recovery_fails(self):
        o, t, e, _ = clean()
        f = [{"fault": "kill_gateway", "recovered_s": 15.2}, {"fault": "restart_redis", "recovered_s": None}]
        rep, line, ok = verdict.judge(o, t, e, 0, f)
        self.assertFalse(ok)
        self.assertIn("kill_gateway recovered in 15.2 s", line)
        self.assertIn("restart_redis never recovered", line)

    def test_no_requests_or_no_faults_cannot_pass(self):
        rep, line, ok = verdict.judge({}, [], [], 0, [])
        self.assertFalse(ok)
        self.assertIn("no request was made", line)
        self.assertIn("no fault was injected", line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
