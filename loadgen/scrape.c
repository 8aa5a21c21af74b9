/*
 * scrape.c: the blocking GET of scrape.h: connect, send, read the headers and exactly
 * Content-Length bytes (or to the close), with poll() bounding the whole exchange.
 */
#define _POSIX_C_SOURCE 200809L
#include "scrape.h"

#include "mrd/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (8u << 20)

/* Wait until fd is ready for events or the deadline passes: 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - mrd_mono_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, events, 0};
    int rc = poll(&p, 1, (int)left);
    if (rc < 0 && errno == EINTR) continue;
    return rc < 0 ? -1 : rc;
  }
}

int lg_http_get(const char *host, int port, const char *path, int timeout_ms, char **body,
                char *err, size_t errcap) {
  *body = NULL;
  long long deadline = mrd_mono_ms() + timeout_ms;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", port);
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai) {
    snprintf(err, errcap, "cannot resolve %s", host);
    return -1;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM, 0);
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = -1;
  if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    snprintf(err, errcap, "connect %s:%d: %s", host, port, strerror(errno));
    goto out;
  }
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                   path, host, port);
  if (n <= 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
    snprintf(err, errcap, "send to %s:%d failed", host, port);
    goto out;
  }
  long long want = -1; /* total bytes (headers + body) once Content-Length is known */
  size_t hdr_end = 0;
  for (;;) {
    if (want >= 0 && (long long)len >= want) break;
    int w = wait_fd(fd, POLLIN, deadline);
    if (w <= 0) {
      snprintf(err, errcap, "GET %s: %s", path, w == 0 ? "timed out" : strerror(errno));
      goto out;
    }
    if (len + 65536 + 1 > cap) {
      if (cap > BODY_MAX) {
        snprintf(err, errcap, "GET %s: answer too large", path);
        goto out;
      }
      size_t ncap = cap ? cap * 2 : 131072;
      char *nb = realloc(buf, ncap);
      if (!nb) {
        snprintf(err, errcap, "out of memory");
        goto out;
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      snprintf(err, errcap, "GET %s: %s", path, strerror(errno));
      goto out;
    }
    if (r == 0) break; /* closed: the body ends here */
    len += (size_t)r;
    buf[len] = '\0';
    if (!hdr_end) {
      char *e = strstr(buf, "\r\n\r\n");
      if (e) {
        hdr_end = (size_t)(e - buf) + 4;
        for (char *h = buf; h && h < e; h = strstr(h, "\r\n"), h = h ? h + 2 : NULL)
          if (strncasecmp(h, "Content-Length:", 15) == 0) want = (long long)hdr_end + atoll(h + 15);
      }
    }
  }
  if (!buf || !hdr_end) {
    snprintf(err, errcap, "GET %s: no HTTP answer", path);
    goto out;
  }
  buf[len] = '\0';
  if (strncmp(buf, "HTTP/1.1 200", 12) != 0 && strncmp(buf, "HTTP/1.0 200", 12) != 0) {
    char *eol = strstr(buf, "\r\n");
    if (eol) *eol = '\0';
    snprintf(err, errcap, "GET %s: %.80s", path, buf);
    goto out;
  }
  memmove(buf, buf + hdr_end, len - hdr_end + 1);
  *body = buf;
  buf = NULL;
  rc = 0;
out:
  free(buf);
  if (fd >= 0) close(fd);
  freeaddrinfo(ai);
  return rc;
}
