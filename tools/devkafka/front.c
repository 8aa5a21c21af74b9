/*
 * front.c: devkafka's long-poll front (see front.h, and longpoll.h for why it exists).
 *
 * Per client connection: one upstream connection to the same mock broker; client bytes are
 * cut into request frames (4-byte size + body), upstream bytes into response frames. Each
 * request that gets an answer leaves an expectation (correlation id, API, version and, for a
 * Produce, its records per partition) so that the answer can be read: a Produce answer moves
 * the end-offset table and wakes held fetches, a Metadata or FindCoordinator answer gets the
 * front's ports, an ApiVersions answer its clamp. A held Fetch stays at the head of its
 * connection's input: later requests on that connection wait behind it, as a real broker
 * answers a connection's requests in order.
 *
 * Deliberate limits: a connection whose answers stop matching its expectations (a correlation
 * id out of order) becomes a plain relay; one whose frame sizes make no sense is closed. Buffers
 * grow as needed; reading from a side stops while the other side's output holds more than
 * DK_BACKLOG_BYTES.
 */
#define _GNU_SOURCE
#include "front.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "longpoll.h"
#include "mrd/clock.h"

#define DK_MAX_FRAME_BYTES (256 * 1024 * 1024) /* a larger size prefix is garbage */
#define DK_BACKLOG_BYTES (16 * 1024 * 1024)
#define DK_READ_CHUNK 65536
#define DK_MAX_PARTS 8192 /* partitions read per request; a fetch of more is never held */

typedef struct buf {
  uint8_t *p;
  size_t off, len, cap; /* data is p[off..len) */
} buf;

typedef struct expect {
  int32_t corr;
  int16_t key, ver;
  size_t nparts;
  dk_part *parts; /* Produce: records per partition; topic names in names */
  char *names;
} expect;

enum { REF_LISTEN, REF_CLIENT, REF_UP };
typedef struct ref {
  int kind;
  void *obj;
} ref;

typedef struct conn {
  int cfd, ufd;
  ref cref, uref;
  uint32_t cmask, umask; /* epoll interest now */
  buf cin, cout, uin, uout;
  expect *q;
  size_t qhead, qlen, qcap; /* ring */
  bool opaque;              /* answers no longer read, only relayed */
  bool held, release;       /* head fetch held; let the head fetch pass once */
  int64_t deadline_us;      /* of the held fetch */
  bool dead;
  struct conn *next;
} conn;

typedef struct listener {
  int fd;
  int32_t port, up_port;
  ref r;
} listener;

struct dk_front {
  int ep;
  listener *ls;
  size_t nls, lcap;   /* listeners open, allocated */
  int32_t *from, *to; /* port maps for Metadata answers: mock port -> front port */
  conn *conns;
  dk_offsets *ends;
  dk_part *scratch; /* DK_MAX_PARTS */
  dk_front_stats st;
  bool warned_untrusted, warned_opaque, warned_rewrite;
};

static void logf_(const char *level, const char *msg, const char *extra) {
  int64_t wall_ms = mrd_wall_ms();
  fprintf(stderr, "ts=%lld.%03lld level=%s svc=devkafka msg=\"%s\"%s%s\n",
          (long long)(wall_ms / 1000), (long long)(wall_ms % 1000), level, msg, extra ? " " : "",
          extra ? extra : "");
}

/* ---- buffers ---- */

static bool buf_append(buf *b, const void *p, size_t n) {
  if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
  if (b->cap - b->len < n) {
    if (b->off > 0) { /* compact first */
      memmove(b->p, b->p + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    if (b->cap - b->len < n) {
      size_t cap = b->cap ? b->cap : DK_READ_CHUNK;
      while (cap - b->len < n) cap *= 2;
      uint8_t *g = realloc(b->p, cap);
      if (g == NULL) return false;
      b->p = g;
      b->cap = cap;
    }
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return true;
}
static size_t buf_avail(const buf *b) { return b->len - b->off; }
static void buf_free(buf *b) { free(b->p); }

/* Reads what the socket has into b (making room for DK_READ_CHUNK). 1: read something;
 * 0: nothing now; -1: EOF or error. */
static int buf_read(buf *b, int fd) {
  int got = 0;
  for (;;) {
    if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
    if (b->cap - b->len < DK_READ_CHUNK) {
      if (b->off > 0) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
      }
      if (b->cap - b->len < DK_READ_CHUNK) {
        size_t cap = b->cap ? b->cap * 2 : DK_READ_CHUNK * 2;
        uint8_t *g = realloc(b->p, cap);
        if (g == NULL) return -1;
        b->p = g;
        b->cap = cap;
      }
    }
    ssize_t n = read(fd, b->p + b->len, b->cap - b->len);
    if (n > 0) {
      b->len += (size_t)n;
      got = 1;
      if ((size_t)n < DK_READ_CHUNK) return got;
      continue;
    }
    if (n == 0) return -1;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return got;
    return -1;
  }
}

/* Writes what it can. false on a write error. */
static bool buf_flush(buf *b, int fd) {
  while (buf_avail(b) > 0) {
    ssize_t n = write(fd, b->p + b->off, buf_avail(b));
    if (n > 0) {
      b->off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  b->off = b->len = 0;
  return true;
}

static uint32_t be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- expectations ---- */

static void expect_free(expect *e) {
  free(e->parts);
  free(e->names);
}

static bool q_push(conn *c, expect e) {
  if (c->qlen == c->qcap) {
    size_t cap = c->qcap ? c->qcap * 2 : 16;
    expect *g = malloc(cap * sizeof *g);
    if (g == NULL) return false;
    for (size_t i = 0; i < c->qlen; i++) g[i] = c->q[(c->qhead + i) % c->qcap];
    free(c->q);
    c->q = g;
    c->qcap = cap;
    c->qhead = 0;
  }
  c->q[(c->qhead + c->qlen) % c->qcap] = e;
  c->qlen++;
  return true;
}

/* A Produce's partitions with their topic names copied (the frame goes away). */
static bool expect_parts(expect *e, const dk_part *parts, size_t n) {
  size_t names = 0;
  for (size_t i = 0; i < n; i++) names += parts[i].topic_len;
  e->parts = malloc((n ? n : 1) * sizeof *e->parts);
  e->names = malloc(names ? names : 1);
  if (e->parts == NULL || e->names == NULL) {
    expect_free(e);
    e->parts = NULL;
    e->names = NULL;
    return false;
  }
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(e->names + at, parts[i].topic, parts[i].topic_len);
    e->parts[i] = parts[i];
    e->parts[i].topic = e->names + at;
    at += parts[i].topic_len;
  }
  e->nparts = n;
  return true;
}

/* ---- the relay ---- */

static void distrust(dk_front *f, const char *why) {
  dk_offsets_distrust(f->ends);
  if (!f->warned_untrusted) {
    f->warned_untrusted = true;
    logf_("warn", "long-poll off: fetches are no longer held (the mock's own wait applies)", why);
  }
}

/* Forward the request frames at the head of c->cin until one is held. false: close c. */
static bool pump_requests(dk_front *f, conn *c) {
  while (!c->held) {
    size_t avail = buf_avail(&c->cin);
    if (avail < 4) return true;
    uint8_t *at = c->cin.p + c->cin.off;
    uint32_t size = be32(at);
    if (size > DK_MAX_FRAME_BYTES) return false;
    if (avail < 4 + (size_t)size) return true;
    uint8_t *frame = at + 4;
    dk_req_hdr h;
    bool answered = true;
    expect e = {0};
    if (!dk_req_header(frame, size, &h)) {
      c->opaque = true; /* cannot follow its answers any more */
    } else {
      e.corr = h.correlation_id;
      e.key = h.api_key;
      e.ver = h.api_version;
      if (h.api_key == DK_API_FETCH) {
        dk_fetch fe;
        if (c->release) {
          c->release = false; /* the held fetch going out: counted when it came */
        } else {
          f->st.fetches++;
          if (dk_fetch_parse(frame, size, &h, &fe, f->scratch, DK_MAX_PARTS) &&
              dk_fetch_should_hold(f->ends, &fe, f->scratch, DK_MAX_PARTS)) {
            c->held = true;
            c->deadline_us = mrd_mono_us() + (int64_t)fe.max_wait_ms * 1000;
            f->st.fetches_held++;
            return true;
          }
        }
      } else if (h.api_key == DK_API_PRODUCE) {
        int16_t acks = -1;
        long n = dk_produce_parse(frame, size, &h, &acks, f->scratch, DK_MAX_PARTS);
        f->st.produces++;
        if (n < 0 || n > DK_MAX_PARTS) {
          f->st.produce_unreadable++;
          distrust(f, "reason=\"a Produce request could not be read\"");
        } else if (acks == 0) {
          answered = false; /* no answer comes: nothing to expect */
          distrust(f, "reason=\"a Produce with acks=0 (its offsets are never told)\"");
        } else if (!expect_parts(&e, f->scratch, (size_t)n)) {
          distrust(f, "reason=\"out of memory\"");
        }
      }
    }
    if (!answered || c->opaque) {
      expect_free(&e);
    } else if (!q_push(c, e)) {
      expect_free(&e);
      c->opaque = true;
    }
    if (!buf_append(&c->uout, at, 4 + (size_t)size)) return false;
    c->cin.off += 4 + (size_t)size;
  }
  return true;
}

static void wake_held(dk_front *f);

/* Relay the complete response frames in c->uin to the client, reading those that matter. */
static bool pump_responses(dk_front *f, conn *c) {
  bool moved = false;
  for (;;) {
    size_t avail = buf_avail(&c->uin);
    if (avail < 4) break;
    uint8_t *at = c->uin.p + c->uin.off;
    uint32_t size = be32(at);
    if (size > DK_MAX_FRAME_BYTES) return false;
    if (avail < 4 + (size_t)size) break;
    uint8_t *frame = at + 4;
    if (!c->opaque && c->qlen > 0 && size >= 4) {
      expect e = c->q[c->qhead];
      if ((int32_t)be32(frame) != e.corr) {
        c->opaque = true;
        if (!f->warned_opaque) {
          f->warned_opaque = true;
          logf_("warn", "an answer out of order: that connection is relayed without reading", NULL);
        }
      } else {
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        if (e.key == DK_API_PRODUCE) {
          long n = dk_produce_response_parse(frame, size, e.ver, f->scratch, DK_MAX_PARTS);
          if (n < 0 || n > DK_MAX_PARTS) {
            distrust(f, "reason=\"a Produce answer could not be read\"");
          } else {
            for (long i = 0; i < n; i++) {
              const dk_part *r = &f->scratch[i];
              if (r->offset < 0) continue; /* that partition's produce failed */
              for (size_t k = 0; k < e.nparts; k++) {
                const dk_part *q = &e.parts[k];
                if (q->partition == r->partition && q->topic_len == r->topic_len &&
                    memcmp(q->topic, r->topic, r->topic_len) == 0) {
                  if (dk_offsets_produced(f->ends, r->topic, r->topic_len, r->partition, r->offset,
                                          q->offset))
                    moved = true;
                  break;
                }
              }
            }
          }
        } else if (e.key == DK_API_METADATA || e.key == DK_API_FIND_COORDINATOR) {
          int n = dk_rewrite_ports(frame, size, e.key, e.ver, f->from, f->to, f->nls);
          if (n > 0) f->st.ports_rewritten += (uint64_t)n;
          if (n < 0 && !f->warned_rewrite) {
            f->warned_rewrite = true;
            logf_("warn", "a broker list could not be rewritten: clients may bypass the front",
                  NULL);
          }
        } else if (e.key == DK_API_VERSIONS) {
          (void)dk_clamp_api_versions(frame, size, e.ver);
        }
        expect_free(&e);
      }
    }
    if (!buf_append(&c->cout, at, 4 + (size_t)size)) return false;
    c->uin.off += 4 + (size_t)size;
  }
  if (moved) wake_held(f);
  return true;
}

static void conn_kill(conn *c) { c->dead = true; }

/* Let the held fetch of c pass (at_max_wait: with MaxWait 0, the wait is over). */
static void release(dk_front *f, conn *c, bool at_max_wait) {
  if (at_max_wait) {
    uint8_t *frame = c->cin.p + c->cin.off + 4;
    size_t size = be32(c->cin.p + c->cin.off);
    dk_req_hdr h;
    dk_fetch fe;
    if (dk_req_header(frame, size, &h) && dk_fetch_parse(frame, size, &h, &fe, f->scratch, 0))
      dk_fetch_set_max_wait(frame, &fe, 0);
    f->st.released_at_max_wait++;
  } else {
    f->st.released_by_produce++;
  }
  c->held = false;
  c->release = true;
  if (!pump_requests(f, c)) conn_kill(c);
}

static void wake_held(dk_front *f) {
  for (conn *c = f->conns; c; c = c->next) {
    if (!c->held || c->dead) continue;
    uint8_t *frame = c->cin.p + c->cin.off + 4;
    size_t size = be32(c->cin.p + c->cin.off);
    dk_req_hdr h;
    dk_fetch fe;
    if (!dk_req_header(frame, size, &h) ||
        !dk_fetch_parse(frame, size, &h, &fe, f->scratch, DK_MAX_PARTS) ||
        !dk_fetch_should_hold(f->ends, &fe, f->scratch, DK_MAX_PARTS))
      release(f, c, false);
  }
}

/* ---- connections and epoll ---- */

static void set_mask(dk_front *f, int fd, ref *r, uint32_t *cur, uint32_t want) {
  if (*cur == want) return;
  struct epoll_event ev = {.events = want, .data.ptr = r};
  epoll_ctl(f->ep, EPOLL_CTL_MOD, fd, &ev);
  *cur = want;
}

static void update_masks(dk_front *f, conn *c) {
  uint32_t cw = 0, uw = 0;
  if (buf_avail(&c->uout) < DK_BACKLOG_BYTES) cw |= EPOLLIN;
  if (buf_avail(&c->cout) > 0) cw |= EPOLLOUT;
  if (buf_avail(&c->cout) < DK_BACKLOG_BYTES) uw |= EPOLLIN;
  if (buf_avail(&c->uout) > 0) uw |= EPOLLOUT;
  set_mask(f, c->cfd, &c->cref, &c->cmask, cw);
  set_mask(f, c->ufd, &c->uref, &c->umask, uw);
}

static void conn_free(conn *c) {
  if (c->cfd >= 0) close(c->cfd);
  if (c->ufd >= 0) close(c->ufd);
  buf_free(&c->cin);
  buf_free(&c->cout);
  buf_free(&c->uin);
  buf_free(&c->uout);
  for (size_t i = 0; i < c->qlen; i++) expect_free(&c->q[(c->qhead + i) % c->qcap]);
  free(c->q);
  free(c);
}

static int connect_up(int32_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Loopback: the kernel completes the handshake at once, before the mock accepts. */
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void accept_one(dk_front *f, listener *l) {
  for (;;) {
    int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) return; /* EAGAIN, or a client gone before accept */
    int ufd = connect_up(l->up_port);
    conn *c = ufd >= 0 ? calloc(1, sizeof *c) : NULL;
    if (c == NULL) {
      logf_("error", "cannot reach the mock broker behind the front: client dropped", NULL);
      close(cfd);
      if (ufd >= 0) close(ufd);
      continue;
    }
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->cfd = cfd;
    c->ufd = ufd;
    c->cref = (ref){REF_CLIENT, c};
    c->uref = (ref){REF_UP, c};
    c->cmask = c->umask = EPOLLIN;
    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = &c->cref};
    struct epoll_event ue = {.events = EPOLLIN, .data.ptr = &c->uref};
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, cfd, &ce) != 0 ||
        epoll_ctl(f->ep, EPOLL_CTL_ADD, ufd, &ue) != 0) {
      conn_free(c);
      continue;
    }
    c->next = f->conns;
    f->conns = c;
    f->st.connections++;
  }
}

/* Acknowledge what was just read at once. The mock's sockets keep Nagle: an answer it writes
 * while its previous one is unacknowledged waits for our ACK, which the kernel delays up to
 * 40 ms when we have nothing to send back, as with pipelined requests (an idempotent producer
 * keeps up to 5 in flight). A client that keeps Nagle is spared the same way. Quick-ack mode
 * does not stay on by itself: it is asked for after every read. */
static void quickack(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* Client side ready: flush answers, read requests and pass them on. false: close c. */
static bool on_client(dk_front *f, conn *c, uint32_t ev) {
  if (ev & EPOLLOUT && !buf_flush(&c->cout, c->cfd)) return false;
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    int r = buf_read(&c->cin, c->cfd);
    if (r < 0) return false;
    if (r > 0) quickack(c->cfd);
    if (!pump_requests(f, c) || !buf_flush(&c->uout, c->ufd)) return false;
  }
  return true;
}

/* Broker side ready: flush requests, read answers and pass them on. false: close c. */
static bool on_upstream(dk_front *f, conn *c, uint32_t ev) {
  if (ev & EPOLLOUT && !buf_flush(&c->uout, c->ufd)) return false;
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    int r = buf_read(&c->uin, c->ufd);
    if (r > 0) quickack(c->ufd);
    if (!pump_responses(f, c) || !buf_flush(&c->cout, c->cfd)) return false;
    if (r < 0) return false; /* the broker closed: what it said is passed on first */
  }
  return true;
}

/* Release the fetches whose MaxWait is over; returns the epoll timeout until the next (ms). */
static int expire(dk_front *f) {
  int64_t now = mrd_mono_us(), next = now + 100 * 1000; /* 100 ms: the stop flag's period */
  for (conn *c = f->conns; c; c = c->next) {
    if (!c->held || c->dead) continue;
    if (c->deadline_us <= now) {
      release(f, c, true);
      if (!c->dead && !buf_flush(&c->uout, c->ufd)) conn_kill(c);
    } else if (c->deadline_us < next) {
      next = c->deadline_us;
    }
  }
  int64_t ms = (next - now + 999) / 1000;
  return ms < 0 ? 0 : (int)ms;
}

/* After any event: flush what the wakes queued, set interests, free the dead. */
static void settle(dk_front *f) {
  conn **pp = &f->conns;
  while (*pp) {
    conn *c = *pp;
    if (!c->dead && buf_avail(&c->uout) > 0 && !buf_flush(&c->uout, c->ufd)) conn_kill(c);
    if (!c->dead && buf_avail(&c->cout) > 0 && !buf_flush(&c->cout, c->cfd)) conn_kill(c);
    if (c->dead) {
      *pp = c->next;
      conn_free(c); /* close() also takes the fds out of epoll */
      continue;
    }
    update_masks(f, c);
    pp = &c->next;
  }
}

int dk_front_run(dk_front *f, volatile sig_atomic_t *stop) {
  struct epoll_event evs[64];
  while (!*stop) {
    int timeout_ms = expire(f);
    settle(f);
    int n = epoll_wait(f->ep, evs, 64, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (int i = 0; i < n; i++) {
      ref *r = evs[i].data.ptr;
      if (r->kind == REF_LISTEN) {
        accept_one(f, r->obj);
        continue;
      }
      conn *c = r->obj;
      if (c->dead) continue;
      bool ok =
          r->kind == REF_CLIENT ? on_client(f, c, evs[i].events) : on_upstream(f, c, evs[i].events);
      if (!ok) conn_kill(c);
    }
    settle(f);
  }
  return 0;
}

dk_front *dk_front_new(const int32_t *broker_ports, size_t nbrokers, char *err, size_t err_len) {
  dk_front *f = calloc(1, sizeof *f);
  if (f == NULL) goto oom;
  f->ep = -1;
  f->ls = calloc(nbrokers, sizeof *f->ls);
  f->from = calloc(nbrokers, sizeof *f->from);
  f->to = calloc(nbrokers, sizeof *f->to);
  f->scratch = calloc(DK_MAX_PARTS, sizeof *f->scratch);
  f->ends = dk_offsets_new();
  if (f->ls == NULL || f->from == NULL || f->to == NULL || f->scratch == NULL || f->ends == NULL)
    goto oom;
  f->lcap = nbrokers;
  for (size_t i = 0; i < nbrokers; i++) f->ls[i].fd = -1;
  f->ep = epoll_create1(EPOLL_CLOEXEC);
  if (f->ep < 0) {
    snprintf(err, err_len, "epoll_create1: %s", strerror(errno));
    goto fail;
  }
  for (size_t i = 0; i < nbrokers; i++) {
    listener *l = &f->ls[i];
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(l->fd, 128) != 0 ||
        getsockname(l->fd, (struct sockaddr *)&a, &alen) != 0) {
      snprintf(err, err_len, "front listener: %s", strerror(errno));
      goto fail;
    }
    l->port = ntohs(a.sin_port);
    l->up_port = broker_ports[i];
    l->r = (ref){REF_LISTEN, l};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->r};
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, l->fd, &ev) != 0) {
      snprintf(err, err_len, "epoll_ctl: %s", strerror(errno));
      goto fail;
    }
    f->from[i] = broker_ports[i];
    f->to[i] = l->port;
    f->nls++;
  }
  return f;
oom:
  snprintf(err, err_len, "out of memory");
fail:
  dk_front_free(f);
  return NULL;
}

int32_t dk_front_port(const dk_front *f, size_t i) { return i < f->nls ? f->ls[i].port : -1; }

dk_front_stats dk_front_get_stats(const dk_front *f) { return f->st; }

void dk_front_free(dk_front *f) {
  if (f == NULL) return;
  while (f->conns) {
    conn *c = f->conns;
    f->conns = c->next;
    conn_free(c);
  }
  for (size_t i = 0; f->ls && i < f->lcap; i++)
    if (f->ls[i].fd >= 0) close(f->ls[i].fd);
  if (f->ep >= 0) close(f->ep);
  free(f->ls);
  free(f->from);
  free(f->to);
  free(f->scratch);
  dk_offsets_free(f->ends);
  free(f);
}
