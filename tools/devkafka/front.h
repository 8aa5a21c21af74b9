/*
 * front.h: devkafka's long-poll front, the I/O half (the reading and the decisions are in
 * longpoll.h). One listener on 127.0.0.1 per mock broker; each client connection is relayed
 * to its broker byte for byte, in order, except that a Fetch with nothing to read is held until
 * a produce reaches one of its partitions or its MaxWait ends. One thread (the caller's),
 * epoll; it is not a Kafka broker and keeps no data.
 */
#ifndef DEVKAFKA_FRONT_H
#define DEVKAFKA_FRONT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dk_front dk_front;

/* What the front did, for the log. */
typedef struct dk_front_stats {
  uint64_t connections, fetches, fetches_held, released_by_produce, released_at_max_wait;
  uint64_t produces, produce_unreadable, ports_rewritten;
} dk_front_stats;

/* Listens on 127.0.0.1 (a port of the kernel's choosing) before each of the nbrokers mock ports
 * broker_ports[]. NULL after one line in err. */
dk_front *dk_front_new(const int32_t *broker_ports, size_t nbrokers, char *err, size_t err_len);

/* The front's port before broker i. */
int32_t dk_front_port(const dk_front *f, size_t i);

/* Serves until *stop is set (checked at least every 100 ms). 0, or -1 when epoll fails. */
int dk_front_run(dk_front *f, volatile sig_atomic_t *stop);

dk_front_stats dk_front_get_stats(const dk_front *f);

/* Closes every connection and listener. NULL is a no-op. */
void dk_front_free(dk_front *f);

#endif
