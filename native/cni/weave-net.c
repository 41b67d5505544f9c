/*
 * weave-net: the CNI plugin (spec 0.3.0 to 1.1.0) as a small native program, so that a runtime
 * starting many pods does not wait on Node's start-up for each call.
 *
 * It is a relay, like cni/weave-net.ts (the reference, which it behaves the same as): it posts the
 * runtime's CNI_* environment and its stdin, verbatim, to the local router (POST /cni/exec), which
 * speaks CNI (attach/cni/exec.ts), and prints what the router answers: the stdout bytes, a line on
 * stderr, the exit status. See contract/cni.ts for the exchange; this file copies what it needs.
 *
 * It does three things itself, which need no router:
 *   VERSION   answered here (the supported versions; the config's cniVersion, when it is one of them)
 *   the router down or not answering in 30 s: code 11 "try again" (50 "not available" for STATUS)
 *   a call over 64 KiB (the API's limit), a bad router address: code 7
 * For those it reads two top-level fields of the config, cniVersion and apiAddr (the router's
 * address; else WEAVE_HTTP_ADDR; else 127.0.0.1:6784), with a JSON scanner that checks the grammar
 * and decodes only those two strings. Every read is bounded; nothing is allocated.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXEC_MAX (64 * 1024)      /* CNI_EXEC_MAX: the API's limit on a request body */
#define ANSWER_MAX (256 * 1024)   /* an ADD's result is well under 1 KiB, with a prevResult under 64 */
#define TIMEOUT_MS 30000          /* as the TS plugin's */
#define DEFAULT_API "127.0.0.1:6784"

enum { ERR_INVALID_CONFIG = 7, ERR_DECODE = 6, ERR_IO = 5, ERR_TRY_AGAIN = 11, ERR_NOT_AVAILABLE = 50 };
static const char *const VERSIONS[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
#define N_VERSIONS (sizeof VERSIONS / sizeof VERSIONS[0])

static char conf[EXEC_MAX + 1];    /* stdin; one byte more than fits, to know it did not */
static char body[EXEC_MAX + 1024]; /* the request: headers, then the JSON envelope */
static char answer[ANSWER_MAX + 1];

/* ---- output ---- */

/* A growing string in a fixed buffer; `over` once something did not fit (then nothing more is added). */
struct out {
  char *p;
  size_t len, cap;
  int over;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->over || n > o->cap - o->len) {
    o->over = 1;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
}
static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* A JSON string of bytes, escaped as JSON.stringify escapes it (bytes from 0x80 pass as they are). */
static void put_json(struct out *o, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  put(o, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char e[6] = {'\\', 0, '0', '0', 0, 0};
    switch (c) {
      case '"': e[1] = '"'; put(o, e, 2); break;
      case '\\': e[1] = '\\'; put(o, e, 2); break;
      case '\b': e[1] = 'b'; put(o, e, 2); break;
      case '\f': e[1] = 'f'; put(o, e, 2); break;
      case '\n': e[1] = 'n'; put(o, e, 2); break;
      case '\r': e[1] = 'r'; put(o, e, 2); break;
      case '\t': e[1] = 't'; put(o, e, 2); break;
      default:
        if (c < 0x20) {
          e[1] = 'u', e[4] = hex[c >> 4], e[5] = hex[c & 15];
          put(o, e, 6);
        } else
          put(o, (const char *)&c, 1);
    }
  }
  put(o, "\"", 1);
}

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w, n -= (size_t)w;
  }
}

static const char *command; /* CNI_COMMAND, "" when unset */
static const char *version_of_errors = "1.1.0";

/* Prints a CNI error as the router prints one (contract/cni.ts cniError) and exits 1. */
static void fail(int code, const char *fmt, ...) {
  char msg[1024], line[2048], js[4096];
  struct out o = {js, 0, sizeof js, 0};
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(line, sizeof line, "weave-net: %s: %s\n", *command ? command : "no command", msg);
  write_all(2, line, strlen(line));
  snprintf(line, sizeof line, "{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":", version_of_errors, code);
  puts_(&o, line);
  put_json(&o, msg, strlen(msg));
  puts_(&o, "}\n");
  write_all(1, js, o.len);
  exit(1);
}

/* ---- the config: a JSON scanner that checks the grammar and keeps two top-level strings ---- */

enum kind { ABSENT, STRING, NUL, OTHER };
struct field {
  const char *name;
  enum kind kind;
  char value[512]; /* apiAddr: a host of up to 255 bytes and a port; longer is refused, as the TS plugin refuses it */
  int too_long;
};
static struct field cni_version = {"cniVersion", ABSENT, "", 0}, api_addr = {"apiAddr", ABSENT, "", 0};

struct scan {
  const char *p, *end;
};

static void ws(struct scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int hex4(const char *p, unsigned *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return 0;
    *v = *v * 16 + (unsigned)d;
  }
  return 1;
}

/* A string at s->p (on its opening quote); its decoded bytes go to `into` when given (UTF-8; a lone
 * surrogate as its three bytes, which then matches nothing). */
static int string(struct scan *s, struct out *into) {
  if (s->p >= s->end || *s->p != '"') return 0;
  for (s->p++; s->p < s->end; s->p++) {
    unsigned char c = (unsigned char)*s->p;
    if (c == '"') {
      s->p++;
      return 1;
    }
    if (c < 0x20) return 0;
    if (c != '\\') {
      if (into) put(into, (const char *)&c, 1);
      continue;
    }
    if (++s->p >= s->end) return 0;
    const char *simple = strchr("\"\\/bfnrt", *s->p), *decoded = "\"\\/\b\f\n\r\t";
    if (*s->p != 'u') {
      if (simple == NULL || *s->p == '\0') return 0;
      if (into) put(into, decoded + (simple - "\"\\/bfnrt"), 1);
      continue;
    }
    unsigned u, lo;
    if (s->end - s->p < 5 || !hex4(s->p + 1, &u)) return 0;
    s->p += 4;
    if (u >= 0xd800 && u < 0xdc00 && s->end - s->p >= 7 && s->p[1] == '\\' && s->p[2] == 'u' &&
        hex4(s->p + 3, &lo) && lo >= 0xdc00 && lo < 0xe000) {
      u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
      s->p += 6;
    }
    if (into) {
      char b[4];
      size_t n;
      if (u < 0x80) b[0] = (char)u, n = 1;
      else if (u < 0x800) b[0] = (char)(0xc0 | u >> 6), b[1] = (char)(0x80 | (u & 63)), n = 2;
      else if (u < 0x10000)
        b[0] = (char)(0xe0 | u >> 12), b[1] = (char)(0x80 | (u >> 6 & 63)), b[2] = (char)(0x80 | (u & 63)), n = 3;
      else
        b[0] = (char)(0xf0 | u >> 18), b[1] = (char)(0x80 | (u >> 12 & 63)), b[2] = (char)(0x80 | (u >> 6 & 63)),
        b[3] = (char)(0x80 | (u & 63)), n = 4;
      put(into, b, n);
    }
  }
  return 0;
}

static int digits(struct scan *s) {
  const char *start = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  return s->p > start;
}

static int literal(struct scan *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return 0;
  s->p += n;
  return 1;
}

/* A number, string or literal. */
static int scalar(struct scan *s) {
  if (s->p >= s->end) return 0;
  switch (*s->p) {
    case '"': return string(s, NULL);
    case 't': return literal(s, "true");
    case 'f': return literal(s, "false");
    case 'n': return literal(s, "null");
  }
  if (*s->p == '-') s->p++;
  if (s->p < s->end && *s->p == '0') s->p++;
  else if (!digits(s)) return 0;
  if (s->p < s->end && *s->p == '.' && (s->p++, !digits(s))) return 0;
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (!digits(s)) return 0;
  }
  return 1;
}

/* A member's name and its colon. */
static int key(struct scan *s, struct out *name) {
  ws(s);
  if (!string(s, name)) return 0;
  ws(s);
  if (s->p >= s->end || *s->p++ != ':') return 0;
  ws(s);
  return 1;
}

/* Any value, objects and arrays checked without recursion (a stack of what is open, a byte a level,
 * as deep as the input allows: JSON.parse has no limit either). */
static int value(struct scan *s) {
  static char closer[EXEC_MAX + 1];
  size_t depth = 0;
  for (;;) {
    ws(s);
    if (s->p < s->end && (*s->p == '{' || *s->p == '[')) {
      closer[depth++] = *s->p++ == '{' ? '}' : ']';
      ws(s);
      if (s->p < s->end && *s->p == closer[depth - 1]) s->p++, depth--;
      else if (closer[depth - 1] == '}' && !key(s, NULL)) return 0;
      else continue;
    } else if (!scalar(s)) return 0;
    /* After a value: close what it ended, then a comma and the next value (with its name in an object). */
    for (ws(s); depth > 0 && s->p < s->end && *s->p == closer[depth - 1]; ws(s)) s->p++, depth--;
    if (depth == 0) return 1;
    if (s->p >= s->end || *s->p++ != ',') return 0;
    if (closer[depth - 1] == '}' && !key(s, NULL)) return 0;
  }
}

/* The config object's members, keeping the values of the fields asked for (the last, if repeated). */
static int config(struct scan *s, struct field **fields) {
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == '}') return s->p++, 1;
  for (;;) {
    char name[32];
    struct out k = {name, 0, sizeof name - 1, 0};
    struct field *f = NULL;
    if (!key(s, &k)) return 0;
    name[k.len] = '\0';
    for (struct field **g = fields; *g; g++)
      if (!k.over && strcmp(name, (*g)->name) == 0) f = *g;
    const char *start = s->p;
    if (f != NULL && s->p < s->end && *s->p == '"') {
      struct out v = {f->value, 0, sizeof f->value - 1, 0};
      if (!string(s, &v)) return 0;
      f->value[v.len] = '\0', f->kind = STRING, f->too_long = v.over;
    } else if (!value(s)) return 0;
    else if (f != NULL) f->kind = s->p - start == 4 && memcmp(start, "null", 4) == 0 ? NUL : OTHER;
    ws(s);
    if (s->p >= s->end) return 0;
    if (*s->p == '}') return s->p++, 1;
    if (*s->p++ != ',') return 0;
  }
}

/* Whether the text is only what String.prototype.trim takes away (ASCII space, the BOM, no-break
 * space): the TS plugin then reads the config as {}. */
static int blank(const char *p, const char *end) {
  while (p < end) {
    if (*p && strchr(" \t\n\v\f\r", *p)) p++;
    else if (end - p >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) p += 3;
    else if (end - p >= 2 && memcmp(p, "\xc2\xa0", 2) == 0) p += 2;
    else return 0;
  }
  return 1;
}

/* Reads the config as JSON.parse does: NULL when it is an object (or blank), else what it is not. */
static const char *read_conf(const char *text, size_t n) {
  static struct field *fields[] = {&cni_version, &api_addr, NULL};
  struct scan s = {text, text + n};
  if (blank(s.p, s.end)) return NULL;
  ws(&s);
  int object = s.p < s.end && *s.p == '{';
  if (!(object ? config(&s, fields) : value(&s)) || (ws(&s), s.p != s.end)) {
    cni_version.kind = api_addr.kind = ABSENT;
    return "JSON";
  }
  return object ? NULL : "a JSON object";
}

static int supported(const char *v) {
  for (size_t i = 0; i < N_VERSIONS; i++)
    if (strcmp(v, VERSIONS[i]) == 0) return 1;
  return 0;
}

/* ---- the router ---- */

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error (errno). */
static int await_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? -1 : r;
  }
}

static const char *errno_name(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : strerror(e);
}

/* Why the router does not answer, in Node's words (the TS plugin says the same). */
static const char *why;

/* Connects to host:port (each address it has, in turn) before the deadline; -1 with `why` set. */
static int dial(const char *host, const char *port, long long deadline) {
  struct addrinfo hints = {0}, *all, *a;
  int fd = -1;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int e = getaddrinfo(host, port, &hints, &all);
  if (e != 0) return why = e == EAI_AGAIN ? "EAI_AGAIN" : "ENOTFOUND", -1;
  why = "ECONNREFUSED";
  for (a = all; a != NULL; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    socklen_t len = sizeof err;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
        (errno == EINPROGRESS && await_fd(fd, POLLOUT, deadline) == 1 &&
         getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0))
      break;
    why = now_ms() >= deadline ? "timed out" : errno_name(err ? err : errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(all);
  return fd;
}

/* Sends the request and reads the whole answer (the router closes after it); its length, or -1 with `why`. */
static long exchange(int fd, const char *req, size_t n, long long deadline) {
  size_t got = 0;
  while (n > 0) {
    int r = await_fd(fd, POLLOUT, deadline);
    if (r <= 0) return why = r == 0 ? "timed out" : errno_name(errno), -1;
    ssize_t w = send(fd, req, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w < 0) return why = errno_name(errno), -1;
    req += w, n -= (size_t)w;
  }
  for (;;) {
    int r = await_fd(fd, POLLIN, deadline);
    if (r <= 0) return why = r == 0 ? "timed out" : errno_name(errno), -1;
    ssize_t k = recv(fd, answer + got, sizeof answer - 1 - got, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k < 0) return why = errno_name(errno), -1;
    if (k == 0) break;
    got += (size_t)k;
    if (got == sizeof answer - 1) fail(ERR_IO, "the router's answer is over %d bytes", ANSWER_MAX);
  }
  if (got == 0) return why = "ECONNRESET", -1; /* closed without a word: Node's "socket hang up" */
  answer[got] = '\0';
  return (long)got;
}

int main(void) {
  size_t n = 0;
  ssize_t r;
  command = getenv("CNI_COMMAND") ? getenv("CNI_COMMAND") : "";
  while (n < sizeof conf && ((r = read(0, conf + n, sizeof conf - n)) > 0 || (r < 0 && errno == EINTR)))
    if (r > 0) n += (size_t)r;

  if (n > EXEC_MAX) fail(ERR_INVALID_CONFIG, "the network configuration and CNI environment are over %d bytes", EXEC_MAX);
  const char *not_json = read_conf(conf, n);
  if (cni_version.kind == STRING && !cni_version.too_long && supported(cni_version.value))
    version_of_errors = cni_version.value;
  if (strcmp(command, "VERSION") == 0) {
    char line[256];
    if (not_json) fail(ERR_DECODE, "the network configuration on stdin is not %s", not_json);
    const char *v = cni_version.kind == ABSENT || cni_version.kind == NUL ? "0.3.1" : version_of_errors;
    snprintf(line, sizeof line, "{\"cniVersion\":\"%s\",\"supportedVersions\":[", supported(v) ? v : "1.1.0");
    for (size_t i = 0; i < N_VERSIONS; i++)
      snprintf(line + strlen(line), sizeof line - strlen(line), "%s\"%s\"", i ? "," : "", VERSIONS[i]);
    strcat(line, "]}\n");
    write_all(1, line, strlen(line));
    return 0;
  }

  /* The envelope (contract/cni.ts CniExecRequest), after room for the headers. */
  static const char *const env[][2] = {{"command", "CNI_COMMAND"}, {"containerId", "CNI_CONTAINERID"},
                                       {"netns", "CNI_NETNS"},     {"ifname", "CNI_IFNAME"},
                                       {"args", "CNI_ARGS"},       {"path", "CNI_PATH"}};
  enum { HEAD_ROOM = 1024 };
  struct out o = {body + HEAD_ROOM, 0, EXEC_MAX, 0};
  for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
    const char *v = getenv(env[i][1]);
    puts_(&o, i ? ",\"" : "{\"");
    puts_(&o, env[i][0]);
    puts_(&o, "\":");
    put_json(&o, v ? v : "", v ? strlen(v) : 0);
  }
  puts_(&o, ",\"stdin\":");
  put_json(&o, conf, n);
  puts_(&o, "}");
  if (o.over) fail(ERR_INVALID_CONFIG, "the network configuration and CNI environment are over %d bytes", EXEC_MAX);

  /* The router's address: apiAddr, WEAVE_HTTP_ADDR, the default; HOST:PORT (cni/weave-net.ts ADDR). */
  const char *addr = api_addr.kind == STRING ? api_addr.value : getenv("WEAVE_HTTP_ADDR");
  if (addr == NULL || *addr == '\0') addr = DEFAULT_API;
  const char *colon = strrchr(addr, ':');
  size_t hlen = colon ? (size_t)(colon - addr) : 0, plen = colon ? strlen(colon + 1) : 0;
  int valid = !api_addr.too_long && colon && hlen >= 1 && hlen <= 255 && plen >= 1 && plen <= 5 &&
              strspn(colon + 1, "0123456789") == plen && atoi(colon + 1) <= 65535;
  for (size_t i = 0; valid && i < hlen; i++) valid = addr[i] >= '!' && addr[i] <= '~' && addr[i] != '/';
  if (!valid) fail(ERR_INVALID_CONFIG, "invalid router address \"%.80s\": expected HOST:PORT", addr);
  char host[256];
  memcpy(host, addr, hlen);
  host[hlen] = '\0';
  if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') memmove(host, host + 1, hlen - 2), host[hlen - 2] = '\0';

  /* The headers, right before the envelope: one contiguous request. */
  char head[HEAD_ROOM];
  int hn = snprintf(head, sizeof head,
                    "POST /cni/exec HTTP/1.0\r\nHost: %s%s%s:%s\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", colon + 1, o.len);
  char *req = body + HEAD_ROOM - hn;
  memcpy(req, head, (size_t)hn);

  long long deadline = now_ms() + TIMEOUT_MS;
  int fd = dial(host, colon + 1, deadline);
  long got = fd < 0 ? -1 : exchange(fd, req, (size_t)hn + o.len, deadline);
  if (got < 0)
    fail(strcmp(command, "STATUS") == 0 ? ERR_NOT_AVAILABLE : ERR_TRY_AGAIN,
         "the weave router does not answer at %s (%s): is it running? (weave launch)", addr, why);

  /* HTTP/1.x 200 ...\r\n headers \r\n\r\n EXIT\nSTDERR\nSTDOUT */
  char *text = strstr(answer, "\r\n\r\n");
  int status = 0;
  if (sscanf(answer, "HTTP/1.%*[01] %3d", &status) != 1 || text == NULL) fail(ERR_IO, "the router's answer is not HTTP");
  text += 4;
  size_t tlen = (size_t)got - (size_t)(text - answer);
  char *nl1 = memchr(text, '\n', tlen), *nl2 = nl1 ? memchr(nl1 + 1, '\n', tlen - (size_t)(nl1 + 1 - text)) : NULL;
  int exit_status = 0;
  size_t dn = nl1 ? (size_t)(nl1 - text) : 0;
  int framed = nl2 && dn >= 1 && dn <= 3 && strspn(text, "0123456789") == dn;
  if (status != 200 || !framed) {
    /* What it said on one line, spaces run together, at most 200 bytes (as the TS plugin says it). */
    char said[201];
    size_t k = 0, i = 0;
    for (; i < tlen && k < 200; i++) {
      int sp = text[i] && strchr(" \t\r\n", text[i]);
      if (!sp) said[k++] = text[i];
      else if (k > 0 && said[k - 1] != ' ') said[k++] = ' ';
    }
    while (k > 0 && said[k - 1] == ' ' && strspn(text + i, " \t\r\n") == tlen - i) k--;
    said[k] = '\0';
    fail(ERR_IO, "the router answered HTTP %d: %s", status, said);
  }
  exit_status = atoi(text);
  if (nl2 > nl1 + 1) write_all(2, nl1 + 1, (size_t)(nl2 - nl1));
  write_all(1, nl2 + 1, tlen - (size_t)(nl2 + 1 - text));
  return exit_status;
}
