/*
 * gw_schema_probe.c: a helper for check_schemas.py, not a test by itself. It exposes the
 * gateway's parser and message writers on stdin/stdout so that a Python script can compare
 * them with the JSON Schemas of schemas/ws/:
 *   gw_schema_probe parse   reads lines "driver <json>" or "rider <json>", prints one line
 *                           per input: "ok" or "error <code> <field>"
 *   gw_schema_probe emit    prints one line "<role> <json>" per server message the gateway
 *                           can write (ack, error, nearby, and every event for each role)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

static int parse_mode(void) {
  static char line[16384];
  while (fgets(line, sizeof line, stdin)) {
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') line[--n] = '\0';
    gw_role role;
    const char *json;
    if (strncmp(line, "driver ", 7) == 0) {
      role = GW_ROLE_DRIVER;
      json = line + 7;
    } else if (strncmp(line, "rider ", 6) == 0) {
      role = GW_ROLE_RIDER;
      json = line + 6;
    } else {
      fprintf(stderr, "bad input line: %s\n", line);
      return 2;
    }
    gw_msg m;
    gw_error e;
    if (gw_parse(json, strlen(json), role, NULL, &m, &e) == 0)
      puts("ok");
    else
      printf("error %s %s\n", gw_code_name(e.code), e.field[0] ? e.field : "-");
  }
  return 0;
}

static void emit_line(const char *role, const char *json, int n) {
  if (n < 0) {
    fprintf(stderr, "format failed\n");
    exit(1);
  }
  if (n > 0) printf("%s %s\n", role, json);
}

static int emit_mode(void) {
  char buf[4096];
  emit_line("any", buf, gw_format_ack("r-1", buf, sizeof buf));
  gw_error e;
  memset(&e, 0, sizeof e);
  for (int c = GW_BAD_REQUEST; c < GW_CODE_COUNT; c++) {
    gw_error_set(&e, (gw_code)c, c == GW_BAD_REQUEST ? "lat" : NULL, "message for %s",
                 gw_code_name((gw_code)c));
    e.has_ref = c % 2;
    strcpy(e.ref, "ref-x");
    emit_line("any", buf, gw_format_error(&e, buf, sizeof buf));
  }
  mrd_latlon pts[2] = {{40.75, -73.99}, {40.76, -73.98}};
  emit_line("rider", buf, gw_format_nearby(pts, 2, "n-1", buf, sizeof buf));
  emit_line("rider", buf, gw_format_nearby(NULL, 0, NULL, buf, sizeof buf));
  for (int t = MRD_EV_REQUESTED; t <= MRD_EV_COMMAND_REJECTED; t++) {
    for (int variant = 0; variant < 2; variant++) { /* all optional fields, then none */
      mrd_dispatch_event ev;
      memset(&ev, 0, sizeof ev);
      ev.type = (mrd_event_type)t;
      strcpy(ev.trip_id, "t1-abc");
      ev.seq = 4;
      ev.shard = 1;
      ev.epoch = 1;
      ev.ts_ms = 1700000000000;
      strcpy(ev.rider_id, "rider-1");
      strcpy(ev.driver_id, "drv-1");
      strcpy(ev.request_id, "req-1");
      strcpy(ev.offer_id, "o1-abc-2");
      ev.has_pickup = ev.has_dropoff = ev.has_driver_pos = ev.has_pickup_eta = true;
      ev.pickup = (mrd_latlon){40.78, -73.97};
      ev.dropoff = (mrd_latlon){40.75, -73.99};
      ev.driver_pos = (mrd_latlon){40.79, -73.96};
      ev.pickup_eta_s = 95.5;
      ev.expires_at_ms = 1700000010000;
      ev.status = MRD_TRIP_OFFERED;
      strcpy(ev.reason, "rider_cancelled");
      if (t == MRD_EV_COMMAND_REJECTED) {
        strcpy(ev.error_code, "invalid_state");
        strcpy(ev.ref, "c-1");
        ev.rider_id[0] = '\0';
      }
      if (variant == 1) { /* the minimum each type requires (proto.h) */
        ev.reason[0] = '\0';
        ev.ref[0] = '\0';
        if (t != MRD_EV_OFFERED && t != MRD_EV_MATCHED) {
          ev.has_pickup = ev.has_dropoff = ev.has_driver_pos = ev.has_pickup_eta = false;
          ev.expires_at_ms = 0;
        }
        if (t != MRD_EV_REQUESTED && t != MRD_EV_NO_DRIVER) ev.request_id[0] = '\0';
      }
      if (mrd_dispatch_event_encode(&ev, (uint8_t *)buf, sizeof buf, &(size_t){0}) != 0) {
        fprintf(stderr, "sample event %d/%d is not valid\n", t, variant);
        return 1;
      }
      emit_line("driver", buf, gw_format_event(&ev, GW_ROLE_DRIVER, buf, sizeof buf));
      emit_line("rider", buf, gw_format_event(&ev, GW_ROLE_RIDER, buf, sizeof buf));
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "parse") == 0) return parse_mode();
  if (argc == 2 && strcmp(argv[1], "emit") == 0) return emit_mode();
  fprintf(stderr, "usage: gw_schema_probe parse|emit\n");
  return 2;
}
