/*
 * A plain NATS client in C (Debian's libnats), with no gaffer code: it sends
 * N requests to a subject at once, one thread each, as `nats req` would, and
 * prints how they ended: "ok <n> no_responders <n> timeout <n> other <n>".
 * A reply counts as ok when its body holds "ok":true.
 *
 *   burst <url> <subject> <n> <timeout ms> <name prefix>
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static natsConnection *nc;
static const char *subject;
static const char *prefix;
static long timeout_ms;
static int ok_count, no_responders, timeouts, other;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *one(void *arg) {
  long i = (long)arg;
  char body[256];
  snprintf(body, sizeof body, "{\"name\":\"%s-%ld\"}", prefix, i);
  natsMsg *reply = NULL;
  natsStatus s = natsConnection_RequestString(&reply, nc, subject, body, timeout_ms);
  int good = 0;
  if (s == NATS_OK) {
    const char *data = natsMsg_GetData(reply);
    good = data != NULL && strstr(data, "\"ok\":true") != NULL;
    if (!good) fprintf(stderr, "reply %ld: %.*s\n", i, natsMsg_GetDataLength(reply), data ? data : "");
    natsMsg_Destroy(reply);
  }
  pthread_mutex_lock(&mu);
  if (s == NATS_OK && good) ok_count++;
  else if (s == NATS_NO_RESPONDERS) no_responders++;
  else if (s == NATS_TIMEOUT) timeouts++;
  else other++;
  pthread_mutex_unlock(&mu);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: burst <url> <subject> <n> <timeout ms> <name prefix>\n");
    return 2;
  }
  subject = argv[2];
  long n = atol(argv[3]);
  timeout_ms = atol(argv[4]);
  prefix = argv[5];
  natsStatus s = natsConnection_ConnectTo(&nc, argv[1]);
  if (s != NATS_OK) {
    fprintf(stderr, "connect: %s\n", natsStatus_GetText(s));
    return 1;
  }
  pthread_t *threads = calloc((size_t)n, sizeof *threads);
  for (long i = 0; i < n; i++) pthread_create(&threads[i], NULL, one, (void *)i);
  for (long i = 0; i < n; i++) pthread_join(threads[i], NULL);
  printf("ok %d no_responders %d timeout %d other %d\n", ok_count, no_responders, timeouts, other);
  natsConnection_Destroy(nc);
  nats_Close();
  return 0;
}
