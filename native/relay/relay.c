// The managed (v2) plugin's whole program: a relay from the socket dockerd knows
// (/run/docker/plugins/weave-net.sock, inside the plugin) to the host's router socket (bound into
// the plugin at /run/weave). One router per host serves every call; the plugin holds no state, so
// a restarted router is reached again by the next connection. Static, so the rootfs is this file.
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int unix_addr(const char *path, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path) return -1;
  strcpy(a->sun_path, path);
  return 0;
}

// Copies both ways until either side closes; a half-close is passed on so HTTP bodies end.
static void pipe_both(int a, int b) {
  char buf[65536];
  struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  int open_in[2] = {1, 1};
  while (open_in[0] || open_in[1]) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; i++) {
      if (!open_in[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int from = p[i].fd, to = p[1 - i].fd;
      ssize_t n = read(from, buf, sizeof buf);
      if (n <= 0) {
        open_in[i] = 0;
        p[i].fd = -1;
        shutdown(to, SHUT_WR);
        continue;
      }
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w < 0) {
          if (errno == EINTR) continue;
          return;
        }
        off += w;
      }
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: relay LISTEN_SOCKET ROUTER_SOCKET\n");
    return 2;
  }
  struct sockaddr_un listen_at, router;
  if (unix_addr(argv[1], &listen_at) || unix_addr(argv[2], &router)) {
    fprintf(stderr, "relay: socket path too long\n");
    return 2;
  }
  signal(SIGCHLD, SIG_IGN);  // children are reaped by the kernel
  signal(SIGPIPE, SIG_IGN);
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  unlink(argv[1]);
  if (l < 0 || bind(l, (struct sockaddr *)&listen_at, sizeof listen_at) < 0 || listen(l, 64) < 0) {
    fprintf(stderr, "relay: cannot listen on %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  for (;;) {
    int c = accept(l, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "relay: accept: %s\n", strerror(errno));
      return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
      close(l);
      int r = socket(AF_UNIX, SOCK_STREAM, 0);
      if (r < 0 || connect(r, (struct sockaddr *)&router, sizeof router) < 0) {
        // dockerd then sees a closed connection and reports the plugin call as failed
        fprintf(stderr, "relay: the router is not reachable at %s: %s\n", argv[2], strerror(errno));
        _exit(1);
      }
      pipe_both(c, r);
      _exit(0);
    }
    close(c);
  }
}
