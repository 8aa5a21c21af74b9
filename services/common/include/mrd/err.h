/*
 * err.h: the error codes every mrd_* function returns, and the export macro.
 *
 * Functions return 0 on success or a negative MRD_E* code. errno is converted at the
 * failing call (mrd_err_from_errno); a library's own error text (hiredis, libpq,
 * librdkafka) stays with the handle that owns it (`mrd_redis_errstr()` and friends), as
 * hiredis keeps `err` + `errstr` on its context. This header is not a logging facility.
 */
#ifndef MRD_ERR_H
#define MRD_ERR_H

#if defined(__GNUC__)
#define MRD_EXPORT __attribute__((visibility("default")))
#else
#define MRD_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: 0 is success, every failure is one of these negative values. */
enum {
  MRD_OK = 0,
  MRD_EINVAL = -1,      /* an argument or configuration value is invalid */
  MRD_ENOMEM = -2,      /* an allocation failed; the handle is unchanged */
  MRD_EIO = -3,         /* an I/O error (file, socket) not covered below */
  MRD_ECONN = -4,       /* the server is unreachable or the connection broke */
  MRD_ETIMEDOUT = -5,   /* the operation did not finish in its time limit */
  MRD_EAGAIN = -6,      /* nothing ready yet (no message); try again */
  MRD_EFULL = -7,       /* a local queue is full (Kafka producer): back off, shed load */
  MRD_EPARSE = -8,      /* malformed input (URL, token, number) */
  MRD_ERANGE = -9,      /* a value is out of range or does not fit the buffer */
  MRD_ENOTFOUND = -10,  /* the thing asked for does not exist */
  MRD_EREPLY = -11,     /* the server answered with an error (Redis error reply, SQL error) */
  MRD_EKAFKA = -12,     /* librdkafka reported an error (text on the handle) */
  MRD_EEXPIRED = -13,   /* JWT: exp is in the past */
  MRD_ESIGNATURE = -14, /* JWT: the signature does not match */
  MRD_EALG = -15,       /* JWT: alg is not HS256 (none, RS256, ...) */
  MRD_EFORBIDDEN = -16, /* JWT: the role is not one of driver|rider|ops, or not the one expected */
  MRD_ESTATE = -17,     /* the call is not allowed in the handle's current state */
  MRD_ERR_MIN = -17
};

/* A human-readable message for err (0 or MRD_E*); never NULL, static storage. */
MRD_EXPORT const char *mrd_strerror(int err);

/* The MRD_E* code for an errno value (ENOMEM -> MRD_ENOMEM, ECONNREFUSED -> MRD_ECONN,
 * ETIMEDOUT -> MRD_ETIMEDOUT, EAGAIN -> MRD_EAGAIN, EINVAL -> MRD_EINVAL, ENOENT ->
 * MRD_ENOTFOUND, anything else -> MRD_EIO). */
MRD_EXPORT int mrd_err_from_errno(int errnum);

#ifdef __cplusplus
}
#endif
#endif /* MRD_ERR_H */
