/* err.c: error strings and the errno mapping shared by every mrd_* module. */
#include "mrd/err.h"

#include <errno.h>

const char *mrd_strerror(int err) {
  switch (err) {
  case MRD_OK: return "success";
  case MRD_EINVAL: return "invalid argument";
  case MRD_ENOMEM: return "out of memory";
  case MRD_EIO: return "input/output error";
  case MRD_ECONN: return "connection failed or lost";
  case MRD_ETIMEDOUT: return "timed out";
  case MRD_EAGAIN: return "nothing ready, try again";
  case MRD_EFULL: return "queue full";
  case MRD_EPARSE: return "malformed input";
  case MRD_ERANGE: return "out of range";
  case MRD_ENOTFOUND: return "not found";
  case MRD_EREPLY: return "server returned an error";
  case MRD_EKAFKA: return "kafka error";
  case MRD_EEXPIRED: return "token expired";
  case MRD_ESIGNATURE: return "bad signature";
  case MRD_EALG: return "algorithm not allowed";
  case MRD_EFORBIDDEN: return "role not allowed";
  case MRD_ESTATE: return "not allowed in this state";
  default: return "unknown error";
  }
}

int mrd_err_from_errno(int errnum) {
  switch (errnum) {
  case 0: return MRD_OK;
  case ENOMEM: return MRD_ENOMEM;
  case ECONNREFUSED:
  case ECONNRESET:
  case ECONNABORTED:
  case EPIPE:
  case ENOTCONN:
  case EHOSTUNREACH:
  case ENETUNREACH: return MRD_ECONN;
  case ETIMEDOUT: return MRD_ETIMEDOUT;
#if EAGAIN != EWOULDBLOCK
  case EWOULDBLOCK:
#endif
  case EAGAIN: return MRD_EAGAIN;
  case EINVAL: return MRD_EINVAL;
  case ENOENT: return MRD_ENOTFOUND;
  case ERANGE:
  case EOVERFLOW: return MRD_ERANGE;
  default: return MRD_EIO;
  }
}
