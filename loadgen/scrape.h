/*
 * scrape.h: one blocking HTTP/1.1 GET on loopback, for the gateway's /metrics before and
 * after a run (hops.h reads the text). Not an HTTP client for anything else: no TLS, no
 * redirects, no chunked bodies (the admin endpoints answer with a Content-Length).
 */
#ifndef LG_SCRAPE_H
#define LG_SCRAPE_H

#include <stddef.h>

/* GET http://host:port<path> with a timeout for the whole exchange. Returns 0 and a
 * NUL-terminated heap body in *body (the caller frees it), or -1 with a reason in err
 * (connect failed, timeout, a status other than 200, a body over 8 MiB). */
int lg_http_get(const char *host, int port, const char *path, int timeout_ms, char **body,
                char *err, size_t errcap);

#endif /* LG_SCRAPE_H */
