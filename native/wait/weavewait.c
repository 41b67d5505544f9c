/*
 * weavewait: a container's first process, until its overlay interface is ready.
 *
 *   /w/w COMMAND [ARG...]
 *
 * The Docker API proxy rewrites a container's create request so that it starts as /w/w followed by
 * the original entrypoint and cmd, with the directory holding this program bind-mounted read-only
 * at /w. The container starts before the router has attached `ethwe`, so a server that binds its
 * overlay address at start would fail; this program waits until `ethwe` exists, is up and has an
 * IPv4 address, then execs COMMAND with its arguments unchanged. Because it execs (no fork), the
 * command takes over its PID (PID 1 in the container), its stdio, environment and signals; nothing
 * of this program is left and nothing is printed on that path.
 *
 * It runs inside arbitrary images (busybox, distroless, scratch), so it is linked statically: no
 * dynamic loader, no libc, no /proc or /sys needed in the container. getifaddrs() talks rtnetlink
 * only, which works in an empty root filesystem.
 *
 * Environment (read here, passed on to COMMAND untouched):
 *   WEAVE_WAIT_IFACE    interface to wait for (default "ethwe")
 *   WEAVE_WAIT_TIMEOUT  seconds to wait, may be fractional (default 30; 0 means no limit)
 *
 * Exit status when COMMAND is not run:
 *   1   the interface was not ready in time (one line on stderr)
 *   2   usage: no COMMAND, or a malformed WEAVE_WAIT_TIMEOUT
 *   126 COMMAND was found but could not be executed; 127 COMMAND was not found (as a shell does)
 *   130/143 SIGINT/SIGTERM during the wait (128 + signal number, as a shell reports)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Polling rather than subscribing to rtnetlink events: one short dump every 20 ms costs nothing,
 * cannot miss an event that raced the subscription, and keeps this program a few lines long. */
#define POLL_NS (20 * 1000 * 1000L)

/* As PID 1 of a container, the kernel drops any signal whose disposition is the default, so
 * `docker stop` (SIGTERM) would be ignored for as long as we wait. Handlers make SIGTERM and SIGINT
 * end the wait. exec resets caught signals to their default, so COMMAND starts with a clean slate. */
static void on_signal(int sig) { _exit(128 + sig); }

/* True once `name` is up and has an IPv4 address. Each AF_INET entry carries its link's flags. */
static int ready(const char *name) {
  struct ifaddrs *all, *a;
  int ok = 0;
  if (getifaddrs(&all) != 0) return 0; /* transient (e.g. out of memory): try again next poll */
  for (a = all; a != NULL && !ok; a = a->ifa_next)
    ok = a->ifa_addr != NULL && a->ifa_addr->sa_family == AF_INET && (a->ifa_flags & IFF_UP) &&
         strcmp(a->ifa_name, name) == 0;
  freeifaddrs(all);
  return ok;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  const char *iface = getenv("WEAVE_WAIT_IFACE");
  const char *limit = getenv("WEAVE_WAIT_TIMEOUT");
  double timeout = 30, deadline;
  struct sigaction sa;

  if (iface == NULL || *iface == '\0') iface = "ethwe";
  if (limit != NULL && *limit != '\0') {
    char *end;
    errno = 0;
    timeout = strtod(limit, &end);
    if (errno != 0 || *end != '\0' || !(timeout >= 0)) {
      fprintf(stderr, "weavewait: WEAVE_WAIT_TIMEOUT must be a number of seconds, not '%s'\n", limit);
      return 2;
    }
  }
  /* No option parsing: everything after argv[0] is the command, so no argument is ever taken. */
  if (argc < 2) {
    fprintf(stderr, "usage: weavewait COMMAND [ARG...] (runs COMMAND once %s is up with an IPv4 address)\n", iface);
    return 2;
  }

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  deadline = now() + timeout;
  while (!ready(iface)) {
    double left = deadline - now();
    struct timespec nap = {0, POLL_NS};
    if (timeout > 0 && left <= 0) {
      fprintf(stderr, "weavewait: %s did not come up within %gs\n", iface, timeout);
      return 1;
    }
    if (timeout > 0 && left < POLL_NS / 1e9) nap.tv_nsec = (long)(left * 1e9) + 1;
    nanosleep(&nap, NULL); /* EINTR only from a handled signal, and its handler exits */
  }

  execvp(argv[1], argv + 1);
  fprintf(stderr, "weavewait: cannot run %s: %s\n", argv[1], strerror(errno));
  return errno == ENOENT || errno == ENOTDIR ? 127 : 126;
}
