#!/usr/bin/python3
"""check_schemas.py: the client protocol's written contract agrees with the gateway.

Run by ctest as test_gateway_schemas (with Debian's /usr/bin/python3 and python3-jsonschema):
  1. every file in schemas/ws/ is a valid JSON Schema (draft 2020-12);
  2. every message of the example session in docs/protocol.md validates against its schema;
  3. the gateway's parser and the client schemas agree, message by message, on a corpus of
     valid messages and systematic mutations of them (each field dropped, given each wrong
     type, pushed past each bound, an unknown field added): schema-valid <=> gateway-ok;
  4. every server message the gateway can write (ack, error, nearby, each dispatch event for
     each role) validates against schemas/ws/server/.
Prints a pass/fail count; exits 1 on any failure.
Usage: check_schemas.py --root SRC_DIR --probe PATH_TO_gw_schema_probe
"""
import argparse
import copy
import glob
import json
import os
import re
import subprocess
import sys

from jsonschema import Draft202012Validator, RefResolver

BASE = "https://meridian.invalid/schemas/ws/"
DRIVER_TYPES = ["location", "status", "accept", "decline", "arrived", "start", "complete"]
RIDER_TYPES = ["request", "cancel", "nearby"]
SERVER_TYPES = ["ack", "error", "offer", "matched", "no_driver", "trip", "nearby"]

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def load_schemas(root):
    store = {}
    for path in glob.glob(os.path.join(root, "schemas/ws/**/*.json"), recursive=True):
        with open(path) as f:
            schema = json.load(f)
        rel = os.path.relpath(path, os.path.join(root, "schemas/ws"))
        check(schema.get("$id") == BASE + rel, f"{rel}: $id is {schema.get('$id')}")
        try:
            Draft202012Validator.check_schema(schema)
            check(True, rel)
        except Exception as e:  # noqa: BLE001 - report any schema error
            check(False, f"{rel}: {e}")
        store[schema["$id"]] = schema
    return store


def validator(store, rel):
    schema = store[BASE + rel]
    return Draft202012Validator(schema, resolver=RefResolver(BASE + rel, schema, store=store))


def client_schema(store, role, msg):
    t = msg.get("type") if isinstance(msg, dict) else None
    if role == "driver" and t in DRIVER_TYPES:
        return validator(store, f"driver/{t}.json")
    if role == "rider" and t in RIDER_TYPES:
        return validator(store, f"rider/{t}.json")
    return None


def schema_ok(store, role, msg):
    v = client_schema(store, role, msg)
    return v is not None and v.is_valid(msg)


def check_session(root, store):
    """Lines of the ```session block: '<role> -> {json}' (valid client message), '<role> !>
    {json}' (client message invalid on purpose) or '<role> <- {json}' (server message)."""
    with open(os.path.join(root, "docs/protocol.md")) as f:
        text = f.read()
    blocks = re.findall(r"```session\n(.*?)```", text, re.S)
    check(len(blocks) >= 1, "docs/protocol.md has a ```session example")
    n = 0
    for block in blocks:
        for line in block.splitlines():
            m = re.match(r"^(driver|rider) (->|!>|<-) (\{.*\})\s*$", line)
            if not m:
                continue
            n += 1
            role, direction, body = m.groups()
            msg = json.loads(body)
            if direction == "->":
                check(schema_ok(store, role, msg), f"protocol.md example: {line}")
            elif direction == "!>":
                check(not schema_ok(store, role, msg), f"protocol.md bad example is valid: {line}")
            else:
                t = msg.get("type")
                check(t in SERVER_TYPES and validator(store, f"server/{t}.json").is_valid(msg),
                      f"protocol.md example: {line}")
    check(n >= 15, f"protocol.md session has {n} messages (expected at least 15)")


VALID = {
    "driver": [
        {"type": "location", "lat": 40.758, "lon": -73.9855, "heading": 90.5, "speed_mps": 8.2,
         "ts": 1700000000000, "seq": 12, "ref": "l1"},
        {"type": "location", "lat": 40.758, "lon": -73.9855, "ts": 1700000000000, "seq": 0},
        {"type": "status", "status": "available", "ref": "s"},
        {"type": "status", "status": "offline"},
        {"type": "accept", "offer_id": "o1-9f8e-1", "ref": "a"},
        {"type": "decline", "offer_id": "o0-x"},
        {"type": "arrived", "trip_id": "t1-9f8e"},
        {"type": "start", "trip_id": "t63-9f8e", "ref": ""},
        {"type": "complete", "trip_id": "t0-a.b:c_d-e"},
    ],
    "rider": [
        {"type": "request", "request_id": "req-1", "pickup": {"lat": 40.75, "lon": -73.99},
         "dropoff": {"lat": 40.8, "lon": -73.95}, "ref": "r1"},
        {"type": "cancel", "request_id": "req-1"},
        {"type": "nearby", "lat": 40.75, "lon": -73.99, "radius_m": 800, "ref": "n"},
    ],
}

WRONG_VALUES = [None, True, False, "", "x", "40.5", 0, -1, 1, 1.5, 91, -181, 360, 5001,
                0.5, 100.5, 2**53, 2**53 - 1, -(2**53), [], [1, 2], {}, {"lat": 1, "lon": 1},
                "o1-abc", "t1-abc", "o64-a", "t01-a", "a" * 64, "a" * 65, "é", "a b",
                "available", "offline", "x" * 129, "é" * 128, "é" * 129]


def mutations(msg):
    """The message itself, then one change at a time (top level and inside points)."""
    yield msg
    for key in msg:
        if key == "type":
            continue
        m = copy.deepcopy(msg)
        del m[key]
        yield m
        for v in WRONG_VALUES:
            m = copy.deepcopy(msg)
            m[key] = v
            yield m
        if isinstance(msg[key], dict):
            for sub in msg[key]:
                m = copy.deepcopy(msg)
                del m[key][sub]
                yield m
                for v in WRONG_VALUES:
                    m = copy.deepcopy(msg)
                    m[key][sub] = v
                    yield m
            m = copy.deepcopy(msg)
            m[key]["alt"] = 1
            yield m
    for extra in ["driver_id", "rider_id", "Type", "lat", "seq", "status", "offer_id"]:
        if extra not in msg:
            m = copy.deepcopy(msg)
            m[extra] = 1
            yield m
    for t in DRIVER_TYPES + RIDER_TYPES + ["", "ack", "LOCATION", 5, None]:
        m = copy.deepcopy(msg)
        m["type"] = t
        yield m
    m = copy.deepcopy(msg)
    del m["type"]
    yield m


def check_parser_agreement(store, probe):
    cases = []
    for role, msgs in VALID.items():
        for msg in msgs:
            for m in mutations(msg):
                cases.append((role, m))
        # the other role's messages must be refused on this endpoint
        other = "rider" if role == "driver" else "driver"
        for msg in VALID[other]:
            cases.append((role, msg))
    cases += [("driver", []), ("rider", "x"), ("driver", 5), ("rider", None)]
    lines = "".join(f"{role} {json.dumps(m, ensure_ascii=False)}\n" for role, m in cases)
    out = subprocess.run([probe, "parse"], input=lines.encode(), capture_output=True, check=True)
    results = out.stdout.decode().splitlines()
    check(len(results) == len(cases), f"probe answered {len(results)} of {len(cases)}")
    agree = 0
    for (role, m), res in zip(cases, results):
        want = schema_ok(store, role, m)
        got = res == "ok"
        if want == got:
            agree += 1
        else:
            check(False, f"{role} {json.dumps(m)}: schema says {'valid' if want else 'invalid'}, "
                         f"gateway says {res}")
        if not got and res.split()[1] != "bad_request":
            check(False, f"{role} {json.dumps(m)}: refused with {res}, expected bad_request")
    check(agree == len(cases), f"parser and schemas agree on {agree}/{len(cases)} messages")
    print(f"parser/schema agreement: {agree}/{len(cases)} messages")


def check_server_messages(store, probe):
    out = subprocess.run([probe, "emit"], capture_output=True, check=True)
    seen = set()
    for line in out.stdout.decode().splitlines():
        role, body = line.split(" ", 1)
        msg = json.loads(body)
        t = msg.get("type")
        seen.add(t)
        if t not in SERVER_TYPES:
            check(False, f"unknown server message type: {line}")
            continue
        errors = list(validator(store, f"server/{t}.json").iter_errors(msg))
        check(not errors, f"{line}: {[e.message for e in errors]}")
    check(seen == set(SERVER_TYPES), f"server message types written: {sorted(seen)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--probe", required=True)
    args = ap.parse_args()
    store = load_schemas(args.root)
    check_session(args.root, store)
    check_parser_agreement(store, args.probe)
    check_server_messages(store, args.probe)
    print(f"check_schemas: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
