/* fuzz_ws_message.c: libFuzzer target for the gateway's parser of client WebSocket
 * messages (gw_parse: strict JSON, UTF-8, duplicate keys, types, ranges, service area),
 * the first input the gateway takes from the network. The first byte picks the role
 * (even: driver, odd: rider), the rest is the message text (not NUL-terminated, as lws
 * hands it over). Any bytes must be accepted or refused, never a crash, leak or UB; an
 * accepted message has a type of that role, an in-area position for a location, and a
 * ref that formats into a JSON `ack` carrying the same ref; a refusal has a protocol
 * error code and formats into a JSON `error`. Not a unit test: scripts/fuzz runs it;
 * seeds in corpus/ws_message/. */
/* fuzz-options: -max_len=4200 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "area.h"
#include "gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A box around Manhattan, as a service area (the real boundary is a file; no I/O here). */
static const char area_json[] =
    "{\"type\":\"Polygon\",\"coordinates\":[[[-74.03,40.69],[-73.90,40.69],[-73.90,40.89],"
    "[-74.03,40.89],[-74.03,40.69]]]}";

static gw_area *g_area;

static void check_json(const char *buf, int n, const char *type, const char *ref) {
  if (n <= 0 || strlen(buf) != (size_t)n) abort();
  json_error_t jerr;
  json_t *o = json_loadb(buf, (size_t)n, 0, &jerr);
  if (!o) abort();
  const char *t = json_string_value(json_object_get(o, "type"));
  if (!t || strcmp(t, type) != 0) abort();
  if (ref) {
    const char *r = json_string_value(json_object_get(o, "ref"));
    if (!r || strcmp(r, ref) != 0) abort();
  }
  json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_area) {
    char err[128];
    g_area = gw_area_from_geojson(area_json, sizeof area_json - 1, err, sizeof err);
    if (!g_area) abort();
  }
  if (size < 1) return 0;
  gw_role role = (data[0] & 1) ? GW_ROLE_RIDER : GW_ROLE_DRIVER;
  /* a copy of exactly the text, so ASan sees any read past its end */
  size_t len = size - 1;
  char *text = malloc(len ? len : 1);
  if (!text) return 0;
  memcpy(text, data + 1, len);
  gw_msg m;
  gw_error e;
  memset(&e, 0, sizeof e);
  int rc = gw_parse(text, len, role, g_area, &m, &e);
  char buf[2048];
  if (rc == 0) {
    bool driver_type = m.type >= GW_MSG_LOCATION && m.type <= GW_MSG_COMPLETE;
    bool rider_type = m.type >= GW_MSG_REQUEST && m.type <= GW_MSG_NEARBY;
    if (role == GW_ROLE_DRIVER ? !driver_type : !rider_type) abort();
    if (m.type == GW_MSG_LOCATION && !gw_area_contains(g_area, m.pos.lat, m.pos.lon)) abort();
    if (m.type == GW_MSG_REQUEST && !gw_area_contains(g_area, m.pickup.lat, m.pickup.lon)) abort();
    if (m.has_ref) {
      if (memchr(m.ref, '\0', sizeof m.ref) == NULL) abort();
      check_json(buf, gw_format_ack(m.ref, buf, sizeof buf), "ack", m.ref);
    }
  } else if (rc == -1) {
    if (e.code != GW_BAD_REQUEST && e.code != GW_OUT_OF_AREA && e.code != GW_TOO_LARGE) abort();
    if (len <= GW_MAX_MESSAGE_BYTES && e.code == GW_TOO_LARGE) abort();
    if (memchr(e.message, '\0', sizeof e.message) == NULL) abort();
    check_json(buf, gw_format_error(&e, buf, sizeof buf), "error", e.has_ref ? e.ref : NULL);
  } else {
    abort();
  }
  free(text);
  return 0;
}
