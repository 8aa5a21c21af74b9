/*
 * longpoll.c: reading the Kafka frames devkafka's front needs, the end-offset table and the
 * hold decision (see longpoll.h). Pure: no I/O, no clock. Every read is bounds-checked: a
 * short or malformed frame makes the reader fail, never read past the frame.
 *
 * Wire layouts follow the Kafka protocol guide (kafka.apache.org/protocol), non-flexible
 * versions only: int16/int32/int64 big-endian, STRING = int16 length + bytes, NULLABLE_STRING
 * with length -1 for null, BYTES = int32 length + bytes, ARRAY = int32 count + items. The
 * ApiVersions v3 response is the one flexible body read here (compact array, tagged fields).
 */
#include "longpoll.h"

#include <stdlib.h>
#include <string.h>

/* ---- a bounds-checked reader ---- */

typedef struct rd {
  const uint8_t *p;
  size_t n, off;
  bool bad;
} rd;

static bool need(rd *r, size_t k) {
  if (r->bad || r->n - r->off < k || r->off > r->n) r->bad = true;
  return !r->bad;
}
static int8_t i8(rd *r) {
  if (!need(r, 1)) return 0;
  return (int8_t)r->p[r->off++];
}
static int16_t i16(rd *r) {
  if (!need(r, 2)) return 0;
  uint16_t v = (uint16_t)((r->p[r->off] << 8) | r->p[r->off + 1]);
  r->off += 2;
  return (int16_t)v;
}
static int32_t i32(rd *r) {
  if (!need(r, 4)) return 0;
  uint32_t v = ((uint32_t)r->p[r->off] << 24) | ((uint32_t)r->p[r->off + 1] << 16) |
               ((uint32_t)r->p[r->off + 2] << 8) | (uint32_t)r->p[r->off + 3];
  r->off += 4;
  return (int32_t)v;
}
static int64_t i64(rd *r) {
  uint64_t hi = (uint32_t)i32(r), lo = (uint32_t)i32(r);
  return (int64_t)((hi << 32) | lo);
}
static void skip(rd *r, size_t k) {
  if (need(r, k)) r->off += k;
}
/* STRING or NULLABLE_STRING; *s NULL for null. */
static void str(rd *r, const char **s, size_t *len) {
  int16_t l = i16(r);
  *s = NULL;
  *len = 0;
  if (r->bad || l < 0) {
    if (l < -1) r->bad = true;
    return;
  }
  if (!need(r, (size_t)l)) return;
  *s = (const char *)r->p + r->off;
  *len = (size_t)l;
  r->off += (size_t)l;
}
static void skip_str(rd *r) {
  const char *s;
  size_t l;
  str(r, &s, &l);
}
/* An ARRAY count: -1 (null) reads as 0; a count that cannot fit in what is left fails. */
static int32_t count(rd *r, size_t min_item) {
  int32_t c = i32(r);
  if (c < -1 || (c > 0 && min_item && (size_t)c > (r->n - r->off) / min_item)) r->bad = true;
  return c < 0 || r->bad ? 0 : c;
}
static uint64_t uvarint(rd *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (!need(r, 1)) return 0;
    uint8_t b = r->p[r->off++];
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return 0;
}
static void skip_tags(rd *r) {
  uint64_t n = uvarint(r);
  for (uint64_t i = 0; i < n && !r->bad; i++) {
    (void)uvarint(r); /* tag */
    uint64_t len = uvarint(r);
    if (len > r->n)
      r->bad = true;
    else
      skip(r, (size_t)len);
  }
}
static void put32(uint8_t *p, int32_t v) {
  uint32_t u = (uint32_t)v;
  p[0] = (uint8_t)(u >> 24);
  p[1] = (uint8_t)(u >> 16);
  p[2] = (uint8_t)(u >> 8);
  p[3] = (uint8_t)u;
}
static void put16(uint8_t *p, int16_t v) {
  uint16_t u = (uint16_t)v;
  p[0] = (uint8_t)(u >> 8);
  p[1] = (uint8_t)u;
}

/* ---- requests ---- */

bool dk_req_header(const uint8_t *frame, size_t n, dk_req_hdr *h) {
  rd r = {frame, n, 0, false};
  h->api_key = i16(&r);
  h->api_version = i16(&r);
  h->correlation_id = i32(&r);
  skip_str(&r); /* client_id: request header v1 and v2 alike */
  h->body_off = r.off;
  return !r.bad;
}

bool dk_fetch_parse(const uint8_t *frame, size_t n, const dk_req_hdr *h, dk_fetch *out,
                    dk_part *parts, size_t cap) {
  int16_t v = h->api_version;
  if (h->api_key != DK_API_FETCH || v < 4 || v > DK_FETCH_MAX_VERSION) return false;
  rd r = {frame, n, h->body_off, false};
  memset(out, 0, sizeof *out);
  (void)i32(&r); /* replica_id */
  out->max_wait_off = r.off;
  out->max_wait_ms = i32(&r);
  skip(&r, 4 + 4 + 1); /* min_bytes, max_bytes, isolation_level */
  if (v >= 7) {
    int32_t session_id = i32(&r), epoch = i32(&r);
    out->incremental = session_id != 0 && epoch > 0;
  }
  int32_t ntopics = count(&r, 6);
  for (int32_t t = 0; t < ntopics && !r.bad; t++) {
    const char *topic;
    size_t tlen;
    str(&r, &topic, &tlen);
    if (topic == NULL) r.bad = true;
    int32_t np = count(&r, 16);
    for (int32_t i = 0; i < np && !r.bad; i++) {
      dk_part pt = {topic, tlen, i32(&r), 0};
      if (v >= 9) (void)i32(&r); /* current_leader_epoch */
      pt.offset = i64(&r);
      if (v >= 5) (void)i64(&r); /* log_start_offset */
      (void)i32(&r);             /* partition_max_bytes */
      if (!r.bad && out->nparts < cap) parts[out->nparts] = pt;
      out->nparts++;
    }
  }
  return !r.bad;
}

void dk_fetch_set_max_wait(uint8_t *frame, const dk_fetch *f, int32_t ms) {
  put32(frame + f->max_wait_off, ms);
}

/* Records in a RECORDS blob: the sum over its batches (magic 2) of lastOffsetDelta + 1. -1 when
 * a batch is cut short or of another magic. */
static int64_t records_in(const uint8_t *p, size_t n) {
  int64_t total = 0;
  size_t off = 0;
  while (off < n) {
    rd r = {p, n, off, false};
    (void)i64(&r);               /* baseOffset */
    int32_t batch_len = i32(&r); /* from partitionLeaderEpoch to the end */
    (void)i32(&r);               /* partitionLeaderEpoch */
    int8_t magic = i8(&r);
    (void)i32(&r);                /* crc */
    (void)i16(&r);                /* attributes */
    int32_t last_delta = i32(&r); /* lastOffsetDelta */
    if (r.bad || magic != 2 || batch_len < 49 || last_delta < 0 || (size_t)batch_len > n - off - 12)
      return -1;
    total += (int64_t)last_delta + 1;
    off += 12 + (size_t)batch_len;
  }
  return total;
}

long dk_produce_parse(const uint8_t *frame, size_t n, const dk_req_hdr *h, int16_t *acks,
                      dk_part *parts, size_t cap) {
  if (h->api_key != DK_API_PRODUCE || h->api_version < 3 || h->api_version > DK_PRODUCE_MAX_VERSION)
    return -1;
  rd r = {frame, n, h->body_off, false};
  skip_str(&r); /* transactional_id */
  *acks = i16(&r);
  (void)i32(&r); /* timeout_ms */
  long np_total = 0;
  int32_t ntopics = count(&r, 6);
  for (int32_t t = 0; t < ntopics && !r.bad; t++) {
    const char *topic;
    size_t tlen;
    str(&r, &topic, &tlen);
    if (topic == NULL) r.bad = true;
    int32_t np = count(&r, 8);
    for (int32_t i = 0; i < np && !r.bad; i++) {
      int32_t partition = i32(&r);
      int32_t len = i32(&r);
      int64_t recs = 0;
      if (len > 0 && need(&r, (size_t)len)) {
        recs = records_in(r.p + r.off, (size_t)len);
        r.off += (size_t)len;
      } else if (len < -1) {
        r.bad = true;
      }
      if (recs < 0) r.bad = true;
      if (!r.bad && (size_t)np_total < cap)
        parts[np_total] = (dk_part){topic, tlen, partition, recs};
      np_total++;
    }
  }
  return r.bad ? -1 : np_total;
}

/* ---- responses ---- */

long dk_produce_response_parse(const uint8_t *frame, size_t n, int16_t version, dk_part *parts,
                               size_t cap) {
  if (version < 3 || version > DK_PRODUCE_MAX_VERSION) return -1;
  rd r = {frame, n, 0, false};
  (void)i32(&r); /* correlation_id */
  long np_total = 0;
  int32_t ntopics = count(&r, 6);
  for (int32_t t = 0; t < ntopics && !r.bad; t++) {
    const char *topic;
    size_t tlen;
    str(&r, &topic, &tlen);
    if (topic == NULL) r.bad = true;
    int32_t np = count(&r, 14);
    for (int32_t i = 0; i < np && !r.bad; i++) {
      int32_t partition = i32(&r);
      int16_t err = i16(&r);
      int64_t base = i64(&r);
      (void)i64(&r);                   /* log_append_time_ms (v2+) */
      if (version >= 5) (void)i64(&r); /* log_start_offset */
      if (version >= 8) {
        int32_t nerr = count(&r, 6);
        for (int32_t e = 0; e < nerr && !r.bad; e++) {
          (void)i32(&r); /* batch_index */
          skip_str(&r);  /* batch_index_error_message */
        }
        skip_str(&r); /* error_message */
      }
      if (!r.bad && (size_t)np_total < cap)
        parts[np_total] = (dk_part){topic, tlen, partition, err == 0 && base >= 0 ? base : -1};
      np_total++;
    }
  }
  return r.bad ? -1 : np_total;
}

static int32_t mapped(int32_t port, const int32_t *from, const int32_t *to, size_t nmap) {
  for (size_t i = 0; i < nmap; i++)
    if (from[i] == port) return to[i];
  return -1;
}

int dk_rewrite_ports(uint8_t *frame, size_t n, int16_t api_key, int16_t version,
                     const int32_t *from, const int32_t *to, size_t nmap) {
  rd r = {frame, n, 0, false};
  (void)i32(&r); /* correlation_id */
  int rewritten = 0;
  if (api_key == DK_API_METADATA) {
    if (version < 0 || version > DK_METADATA_MAX_VERSION) return -1;
    if (version >= 3) (void)i32(&r); /* throttle_time_ms */
    int32_t nb = count(&r, 10);
    for (int32_t b = 0; b < nb && !r.bad; b++) {
      (void)i32(&r); /* node_id */
      skip_str(&r);  /* host */
      size_t at = r.off;
      int32_t port = i32(&r);
      if (version >= 1) skip_str(&r); /* rack */
      int32_t np = r.bad ? -1 : mapped(port, from, to, nmap);
      if (np >= 0) {
        put32(frame + at, np);
        rewritten++;
      }
    }
  } else if (api_key == DK_API_FIND_COORDINATOR) {
    if (version < 0 || version > DK_FIND_COORDINATOR_MAX_VERSION) return -1;
    if (version >= 1) (void)i32(&r); /* throttle_time_ms */
    (void)i16(&r);                   /* error_code */
    if (version >= 1) skip_str(&r);  /* error_message */
    (void)i32(&r);                   /* node_id */
    skip_str(&r);                    /* host */
    size_t at = r.off;
    int32_t port = i32(&r);
    int32_t np = r.bad ? -1 : mapped(port, from, to, nmap);
    if (np >= 0) {
      put32(frame + at, np);
      rewritten++;
    }
  } else {
    return -1;
  }
  return r.bad ? -1 : rewritten;
}

static int16_t clamp_for(int16_t key) {
  switch (key) {
  case DK_API_PRODUCE: return DK_PRODUCE_MAX_VERSION;
  case DK_API_FETCH: return DK_FETCH_MAX_VERSION;
  case DK_API_METADATA: return DK_METADATA_MAX_VERSION;
  case DK_API_FIND_COORDINATOR: return DK_FIND_COORDINATOR_MAX_VERSION;
  default: return -1;
  }
}

bool dk_clamp_api_versions(uint8_t *frame, size_t n, int16_t version) {
  if (version < 0 || version > 3) return false;
  rd r = {frame, n, 0, false};
  (void)i32(&r); /* correlation_id (the ApiVersions response header is always v0) */
  if (i16(&r) != 0) return false; /* an error answer (maybe in v0's layout): left alone */
  int64_t nk;
  if (version >= 3) {
    uint64_t c = uvarint(&r); /* compact array: count + 1 */
    nk = c == 0 ? 0 : (int64_t)c - 1;
  } else {
    nk = count(&r, 6);
  }
  for (int64_t k = 0; k < nk && !r.bad; k++) {
    int16_t key = i16(&r);
    (void)i16(&r); /* min_version */
    size_t at = r.off;
    int16_t max = i16(&r);
    if (version >= 3) skip_tags(&r);
    int16_t cap = clamp_for(key);
    if (!r.bad && cap >= 0 && max > cap) put16(frame + at, cap);
  }
  return !r.bad;
}

/* ---- the end-offset table ---- */

typedef struct dk_topic_ends {
  char *name;
  size_t len;
  int64_t *end; /* per partition */
  int32_t nparts;
} dk_topic_ends;

struct dk_offsets {
  dk_topic_ends *topics;
  size_t ntopics;
  bool untrusted;
};

dk_offsets *dk_offsets_new(void) { return calloc(1, sizeof(dk_offsets)); }

void dk_offsets_free(dk_offsets *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->ntopics; i++) {
    free(t->topics[i].name);
    free(t->topics[i].end);
  }
  free(t->topics);
  free(t);
}

static const dk_topic_ends *find_topic(const dk_offsets *t, const char *name, size_t len) {
  for (size_t i = 0; i < t->ntopics; i++)
    if (t->topics[i].len == len && memcmp(t->topics[i].name, name, len) == 0) return &t->topics[i];
  return NULL;
}

int64_t dk_offsets_end(const dk_offsets *t, const char *topic, size_t topic_len,
                       int32_t partition) {
  const dk_topic_ends *te = find_topic(t, topic, topic_len);
  if (te == NULL || partition < 0 || partition >= te->nparts) return 0;
  return te->end[partition];
}

#define DK_MAX_PARTITION 65535 /* beyond this a partition number is not believed */

bool dk_offsets_produced(dk_offsets *t, const char *topic, size_t topic_len, int32_t partition,
                         int64_t base, int64_t records) {
  if (partition < 0 || partition > DK_MAX_PARTITION || base < 0 || records < 0) return false;
  dk_topic_ends *te = (dk_topic_ends *)find_topic(t, topic, topic_len);
  if (te == NULL) {
    dk_topic_ends *grown = realloc(t->topics, (t->ntopics + 1) * sizeof *grown);
    char *name = malloc(topic_len + 1);
    if (grown == NULL || name == NULL) {
      if (grown) t->topics = grown;
      free(name);
      t->untrusted = true;
      return false;
    }
    t->topics = grown;
    memcpy(name, topic, topic_len);
    name[topic_len] = '\0';
    te = &t->topics[t->ntopics++];
    *te = (dk_topic_ends){name, topic_len, NULL, 0};
  }
  if (partition >= te->nparts) {
    int32_t n = partition + 1;
    int64_t *grown = realloc(te->end, (size_t)n * sizeof *grown);
    if (grown == NULL) {
      t->untrusted = true;
      return false;
    }
    for (int32_t i = te->nparts; i < n; i++) grown[i] = 0;
    te->end = grown;
    te->nparts = n;
  }
  int64_t end = base + records;
  if (end <= te->end[partition]) return false;
  te->end[partition] = end;
  return true;
}

void dk_offsets_distrust(dk_offsets *t) { t->untrusted = true; }
bool dk_offsets_trusted(const dk_offsets *t) { return !t->untrusted; }

bool dk_fetch_should_hold(const dk_offsets *t, const dk_fetch *f, const dk_part *parts,
                          size_t cap) {
  if (t->untrusted || f->incremental || f->max_wait_ms <= 0 || f->nparts == 0 || f->nparts > cap)
    return false;
  for (size_t i = 0; i < f->nparts; i++)
    if (parts[i].offset < dk_offsets_end(t, parts[i].topic, parts[i].topic_len, parts[i].partition))
      return false; /* something to read there */
  return true;
}

int dk_offsets_check(const dk_offsets *t) {
  for (size_t i = 0; i < t->ntopics; i++) {
    const dk_topic_ends *te = &t->topics[i];
    if (te->name == NULL || strlen(te->name) != te->len || te->nparts < 0 ||
        te->nparts > DK_MAX_PARTITION + 1 || (te->nparts > 0 && te->end == NULL))
      return -1;
    for (int32_t p = 0; p < te->nparts; p++)
      if (te->end[p] < 0) return -1;
  }
  return 0;
}
