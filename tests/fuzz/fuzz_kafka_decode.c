/* fuzz_kafka_decode.c: libFuzzer target for the Kafka payload decoders (mrd_proto: driver
 * locations, dispatch commands, dispatch events), whose input is whatever is on a topic,
 * and for the gateway's rendering of a decoded dispatch event into a client message.
 * Every decoder runs on the same bytes. Any bytes must decode to OK or one of the
 * documented errors, never a crash, leak or UB; what decodes must encode again (decode
 * validates what encode requires), and that encoding is a fixed point (decode + encode
 * gives the same bytes); a decoded event renders, for either role, to nothing, a refusal
 * (-1: e.g. a string that is not UTF-8) or one JSON object with a "type". Not a unit test:
 * scripts/fuzz runs it; seeds in corpus/kafka_decode/. */
/* fuzz-options: -max_len=1024 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "mrd/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rc(int rc) {
  if (rc != MRD_PROTO_OK && rc != MRD_PROTO_EPARSE && rc != MRD_PROTO_EVERSION &&
      rc != MRD_PROTO_EINVAL)
    abort();
}

/* enc1 is the encoding of a decoded message; decoding it and encoding again must give it back. */
#define FIXED_POINT(type, encode, decode, enc1, len1)                                              \
  do {                                                                                             \
    type again_;                                                                                   \
    uint8_t enc2_[MRD_PROTO_MAX_SIZE];                                                             \
    size_t len2_;                                                                                  \
    if (decode(enc1, len1, &again_) != MRD_PROTO_OK) abort();                                      \
    if (encode(&again_, enc2_, sizeof enc2_, &len2_) != MRD_PROTO_OK) abort();                     \
    if (len2_ != (len1) || memcmp(enc2_, enc1, len1) != 0) abort();                                \
  } while (0)

static void check_event_json(const mrd_dispatch_event *ev, gw_role role) {
  char buf[16384];
  int n = gw_format_event(ev, role, buf, sizeof buf);
  if (n < -1 || n >= (int)sizeof buf) abort();
  if (n <= 0) return;
  if (strlen(buf) != (size_t)n) abort();
  json_error_t jerr;
  json_t *o = json_loadb(buf, (size_t)n, 0, &jerr);
  if (!o || !json_is_object(o) || !json_is_string(json_object_get(o, "type"))) abort();
  json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t enc[MRD_PROTO_MAX_SIZE];
  size_t len;

  mrd_driver_location loc;
  int rc = mrd_driver_location_decode(data, size, &loc);
  check_rc(rc);
  if (rc == MRD_PROTO_OK) {
    if (mrd_driver_location_encode(&loc, enc, sizeof enc, &len) != MRD_PROTO_OK) abort();
    FIXED_POINT(mrd_driver_location, mrd_driver_location_encode, mrd_driver_location_decode, enc,
                len);
  }

  mrd_command cmd;
  rc = mrd_command_decode(data, size, &cmd);
  check_rc(rc);
  if (rc == MRD_PROTO_OK) {
    if (mrd_command_encode(&cmd, enc, sizeof enc, &len) != MRD_PROTO_OK) abort();
    FIXED_POINT(mrd_command, mrd_command_encode, mrd_command_decode, enc, len);
    if (mrd_cmd_kind_name(cmd.kind) == NULL) abort();
  }

  mrd_dispatch_event ev;
  rc = mrd_dispatch_event_decode(data, size, &ev);
  check_rc(rc);
  if (rc == MRD_PROTO_OK) {
    if (mrd_dispatch_event_encode(&ev, enc, sizeof enc, &len) != MRD_PROTO_OK) abort();
    FIXED_POINT(mrd_dispatch_event, mrd_dispatch_event_encode, mrd_dispatch_event_decode, enc, len);
    check_event_json(&ev, GW_ROLE_DRIVER);
    check_event_json(&ev, GW_ROLE_RIDER);
  }
  return 0;
}
