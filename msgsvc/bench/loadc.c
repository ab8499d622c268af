/*
 * A load process in C: msgsvc.bench.worker's job for unicast, multicast, broadcast, a room's messages,
 * registration churn (connect) and idle clients, at a fraction of its CPU, so that the server, not the load, is what a row
 * measures.  Built by msgsvc.bench.cload.
 *
 *   loadc DIALECT HOST PORTS PREFIX COUNT WORKLOAD RATE WINDOW COUNT_LIMIT RECIPIENTS SIZE DURATION
 *         WARMUP BROADCAST_SENDER RECEIVERS DRAIN PASSWORD AT_ONCE
 *
 * DIALECT: the server, as msgsvc.bench.dialects.make takes it: msgsvc, words, ngircd or msgsvc-irc; PORTS:
 * one port, or several separated by commas (a service's nodes: name i connects to the i-th modulo their
 * number); the names are PREFIX0 .. PREFIX<COUNT-1>; RATE is messages/s from this process, or 0 for as fast as WINDOW
 * deliveries in flight allow; COUNT_LIMIT 0 for none; PASSWORD (msgsvc: "" for none) every name's
 * account's, given to HELLO; AT_ONCE the most clients registering at a time (logins with a password: the
 * server's throttle makes those past a few at once from one address wait).  It speaks to its parent as the
 * Python worker does: {"ready": [n, []]} once every client is registered (else once each is in, refused or cut off:
 * [in, [why]]), then "warm", "go" and "quit" on stdin,
 * answered with {"warm": true} and {"result": {...}} (msgsvc.bench.worker.Result) on stdout.
 * Message texts carry the sending time as the Python load's do (msgsvc.bench.dialects.stamp), on
 * CLOCK_MONOTONIC, the clock of Python's time.monotonic_ns.  Churn: COUNT/2 clients at a time connect,
 * register, quit and wait for the server to close, each then again with the name that rested longest;
 * a registration is a delivery, timed from before the connect.  Room: every client joins #bench (msgsvc:
 * VERSION 11 before HELLO, then JOIN), and with BROADCAST_SENDER each message goes from one at random.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum dialect { MSGSVC, WORDS, NGIRCD, MSGSVC_IRC }; /* the server spoken to, as msgsvc.bench.dialects.make */
enum workload { UNICAST, MULTICAST, BROADCAST, ROOM, CONNECT, IDLE };
enum state { CLOSED, REGISTERING, JOINING, READY, QUITTING, REFUSED };

typedef struct {
    int fd;
    enum state state;
    char name[64];
    char *in;  /* what was read and not yet split into lines */
    size_t in_len, in_cap;
    char *out; /* what is waiting for the socket */
    size_t out_len, out_cap;
    int want_write;
    int64_t began; /* churn: when this connection was opened */
    int name_index; /* the name it holds (which port it uses); churn: returned to the pool when it closes */
} client_t;

static enum dialect dialect;
static enum workload workload;
static client_t *clients;
static int nclients, epfd;
static double rate, duration, warmup, drain;
static long window_, count_limit;
static int recipients, size, broadcast_sender, receivers, at_once;
static const char *password;
static uint64_t rng = 88172645463325252ULL;
/* the measured phase's tally */
static long sent, expected, delivered, lost_connections;
static int64_t start_ns, last_delivery_ns;
/* the ramp (connect_all): clients refused or cut off meanwhile, and what the first was told (JSON-safe) */
static int ramping, refused;
static char refusal[256];
/* latency histogram, as msgsvc.bench.stats: exact below 1024 us, then 10 significant bits */
#define SHIFTS 54
static uint64_t hist[SHIFTS + 1][1024];
static int64_t hist_max;
/* churn: the names at rest, oldest first (a ring), and whether new cycles may begin */
static int *pool, pool_head, pool_len, npool;
static char (*pool_names)[64];
static int churning;
#define MAX_PORTS 64
static struct sockaddr_in server_addrs[MAX_PORTS];
static int nports;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static uint64_t next_random(void) { /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void die(const char *what) {
    printf("{\"error\": \"loadc: %s: %s\"}\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static void record(int64_t micros) {
    if (micros < 0) micros = 0;
    if (micros > hist_max) hist_max = micros;
    if (micros < 1024) {
        hist[0][micros]++;
        return;
    }
    int bits = 64 - __builtin_clzll((uint64_t)micros);
    int shift = bits - 10;
    hist[shift][micros >> shift]++;
}

static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
    if (*len + n > *cap) {
        size_t want = (*len + n) * 2 + 4096;
        *buf = realloc(*buf, want);
        if (!*buf) die("realloc");
        *cap = want;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
}

static void watch(client_t *c, int writable) {
    struct epoll_event ev = {.events = EPOLLIN | (writable ? EPOLLOUT : 0), .data.ptr = c};
    if (c->want_write != writable) {
        c->want_write = writable;
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void flush_out(client_t *c) {
    while (c->out_len) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return; /* the read side sees the close */
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    watch(c, c->out_len > 0);
}

static void write_client(client_t *c, const char *data, size_t n) {
    append(&c->out, &c->out_len, &c->out_cap, data, n);
}

static int line_starts(const char *line, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(line, prefix, n) == 0;
}

static const char *find(const char *hay, size_t len, const char *needle) {
    return memmem(hay, len, needle, strlen(needle));
}

/* A client refused or cut off during the ramp (it will not be in): counted, the first one's reason kept. */
static void refuse(client_t *c, const char *why, size_t len) {
    if (workload == CONNECT || c->state == REFUSED) return; /* churn counts its own */
    c->state = REFUSED;
    if (refused++) return;
    size_t n = (size_t)snprintf(refusal, sizeof refusal, "%s: ", c->name);
    for (size_t i = 0; i < len && n < sizeof refusal - 1; i++)
        refusal[n++] = why[i] == '"' || why[i] == '\\' || (unsigned char)why[i] < ' ' || (unsigned char)why[i] > '~' ? '?' : why[i];
    refusal[n] = 0;
}

/* One line from the server (without LF): a delivery, or what registration and PING need. */
static void on_line(client_t *c, const char *line, size_t len, int64_t now) {
    const char *stamp = find(line, len, " :@");
    if (!stamp) stamp = find(line, len, ") @"); /* a multicast from msgsvc's IRC front names its group */
    if (stamp) {
        int64_t sent_at = strtoll(stamp + 3, NULL, 10);
        delivered++;
        record((now - sent_at) / 1000);
        last_delivery_ns = now;
        return;
    }
    if (line_starts(line, len, "PING")) {
        char pong[600];
        size_t n = len - 4 < 500 ? len - 4 : 500;
        int m = snprintf(pong, sizeof pong, "PONG%.*s\r\n", (int)n, line + 4);
        write_client(c, pong, (size_t)m);
        return;
    }
    if (c->state == REGISTERING) {
        if ((dialect == MSGSVC && line_starts(line, len, "ENDUSERS")) ||
            (dialect != MSGSVC && find(line, len, " 001 "))) {
            if (workload == CONNECT) { /* registered: timed, then straight back out */
                delivered++;
                record((now - c->began) / 1000);
                last_delivery_ns = now;
                write_client(c, dialect == MSGSVC ? "QUIT\r\n" : "QUIT :done\r\n", dialect == MSGSVC ? 6 : 12);
                c->state = QUITTING;
            } else if (workload == BROADCAST && dialect != MSGSVC) {
                write_client(c, dialect == MSGSVC_IRC ? "JOIN #all\r\n" : "JOIN #bench\r\n",
                             dialect == MSGSVC_IRC ? 11 : 13);
                c->state = JOINING;
            } else if (workload == ROOM) {
                write_client(c, "JOIN #bench\r\n", 13);
                c->state = JOINING;
            } else {
                c->state = READY;
            }
        }
    } else if (c->state == JOINING &&
               (dialect == MSGSVC ? line_starts(line, len, "ENDMEMBERS") : find(line, len, " 366 ") != NULL)) {
        c->state = READY;
    }
    const char *space = memchr(line, ' ', len); /* an IRC numeric is the word after the prefix */
    int nick_in_use = line_starts(line, len, ":") && space && (size_t)(space - line) + 5 <= len &&
                      memcmp(space, " 433 ", 5) == 0;
    if (c->state != QUITTING && (line_starts(line, len, "ERROR") || line_starts(line, len, "BYE") || nick_in_use)) {
        fprintf(stderr, "loadc: %s refused: %.*s\n", c->name, (int)len, line);
        if (ramping) refuse(c, line, len);
    }
}

static void start_cycle(client_t *c);

/* The server closed the connection: a loss, unless the client had quit (churn: its slot goes again). */
static void on_closed(client_t *c) {
    if (c->state != QUITTING) lost_connections++;
    if (ramping) refuse(c, "closed during the ramp", 22);
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->in_len = c->out_len = 0;
    if (c->state != REFUSED) c->state = CLOSED;
    if (workload == CONNECT) {
        pool[(pool_head + pool_len++) % npool] = c->name_index;
        if (churning) start_cycle(c);
    }
}

static void on_readable(client_t *c) {
    char buf[65536];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            on_closed(c);
            return;
        }
        if (n < 0) break;
        append(&c->in, &c->in_len, &c->in_cap, buf, (size_t)n);
    }
    int64_t now = now_ns(); /* timed once a read, as the Python load does */
    size_t start = 0;
    for (;;) {
        char *lf = memchr(c->in + start, '\n', c->in_len - start);
        if (!lf) break;
        size_t end = (size_t)(lf - c->in);
        size_t len = end - start;
        if (len && c->in[end - 1] == '\r') len--;
        on_line(c, c->in + start, len, now);
        start = end + 1;
    }
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
}

static void register_client(client_t *c) {
    char buf[256];
    int n;
    if (dialect == MSGSVC) /* a room needs version 11's lines; the other workloads speak version 8's */
        n = snprintf(buf, sizeof buf, "%sHELLO %s%s%s\r\n", workload == ROOM ? "VERSION 11\r\n" : "", c->name,
                     *password ? " :" : "", password);
    else /* msgsvc's IRC front gets no PASS: there a password claims the name */
        n = snprintf(buf, sizeof buf, "%sNICK %s\r\nUSER %s 0 * :%s\r\n",
                     dialect == MSGSVC_IRC ? "" : "PASS bench\r\n", c->name, c->name, c->name);
    write_client(c, buf, (size_t)n);
    c->state = REGISTERING;
}

static void open_client(client_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) die("socket");
    const struct sockaddr_in *to = &server_addrs[c->name_index % nports];
    if (connect(c->fd, (const struct sockaddr *)to, sizeof *to) < 0) die("connect");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->want_write = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    register_client(c);
    flush_out(c);
}

/* Churn: connect and register as the name that rested longest. */
static void start_cycle(client_t *c) {
    c->name_index = pool[pool_head];
    pool_head = (pool_head + 1) % npool;
    pool_len--;
    memcpy(c->name, pool_names[c->name_index], sizeof c->name);
    sent++;
    expected++;
    c->began = now_ns();
    open_client(c);
}

static void poll_once(int timeout_ms) {
    struct epoll_event events[1024];
    int n = epoll_wait(epfd, events, 1024, timeout_ms);
    for (int i = 0; i < n; i++) {
        client_t *c = events[i].data.ptr;
        if (c->fd < 0) continue;
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
        if (c->fd >= 0 && (events[i].events & EPOLLOUT)) flush_out(c);
    }
    for (int i = 0; i < nclients; i++)
        if (clients[i].fd >= 0 && clients[i].out_len) flush_out(&clients[i]);
}

/* Connect every client, 25 a poll (no accept queue overflows), at most AT_ONCE registering, until each is in
   or refused or cut off (the parent then says so: such a client never gets in by waiting); how many are in. */
static int connect_all(void) {
    int opened = 0;
    ramping = 1;
    for (;;) {
        int ready = 0;
        for (int i = 0; i < opened; i++) ready += clients[i].state == READY;
        if (ready + refused == nclients) {
            ramping = 0;
            return ready;
        }
        int room = at_once - (opened - ready - refused);
        for (int k = 0; k < 25 && k < room && opened < nclients; k++) open_client(&clients[opened++]);
        poll_once(opened < nclients && opened - ready - refused < at_once ? 0 : 100);
    }
}

static long in_flight(void) {
    if (workload == BROADCAST || workload == ROOM) {
        long local = nclients - 1;
        long behind = sent - (local ? delivered / local : sent);
        return behind * receivers;
    }
    return expected - delivered;
}

static void send_some(long count, int64_t now) {
    char text[4096];
    int tl = snprintf(text, sizeof text, "@%lld.", (long long)now);
    while (tl < size && tl < (int)sizeof text - 1) text[tl++] = 'x';
    text[tl] = 0;
    char line[8192];
    if (workload == BROADCAST) {
        if (!broadcast_sender) return;
        for (long k = 0; k < count; k++) {
            int n = dialect == MSGSVC       ? snprintf(line, sizeof line, "BROADCAST :%s\r\n", text)
                    : dialect == MSGSVC_IRC ? snprintf(line, sizeof line, "PRIVMSG #all :%s\r\n", text)
                                            : snprintf(line, sizeof line, "PRIVMSG #bench :%s\r\n", text);
            write_client(&clients[0], line, (size_t)n);
        }
        sent += count;
        expected += count * receivers;
        return;
    }
    if (workload == ROOM) {
        if (!broadcast_sender) return;
        int n = snprintf(line, sizeof line, dialect == MSGSVC ? "SEND #bench :%s\r\n" : "PRIVMSG #bench :%s\r\n",
                         text);
        for (long k = 0; k < count; k++)
            write_client(&clients[next_random() % (uint64_t)nclients], line, (size_t)n);
        sent += count;
        expected += count * receivers;
        return;
    }
    int k = workload == UNICAST ? 1 : recipients;
    int others = nclients - 1;
    for (long m = 0; m < count; m++) {
        int sender = (int)(next_random() % (uint64_t)nclients);
        int picks[64];
        for (int j = 0; j < k; j++) { /* distinct, anyone but the sender */
            int p;
            int again;
            do {
                p = (int)(next_random() % (uint64_t)others);
                again = 0;
                for (int q = 0; q < j; q++) again |= picks[q] == p;
            } while (again);
            picks[j] = p;
        }
        client_t *c = &clients[sender];
        if (dialect == WORDS) {
            for (int j = 0; j < k; j++) {
                int r = picks[j] + (picks[j] >= sender);
                int n = snprintf(line, sizeof line, "PRIVMSG %s :%s\r\n", clients[r].name, text);
                write_client(c, line, (size_t)n);
            }
            continue;
        }
        int n = snprintf(line, sizeof line, dialect == MSGSVC ? "SEND " : "PRIVMSG ");
        for (int j = 0; j < k; j++) {
            int r = picks[j] + (picks[j] >= sender);
            n += snprintf(line + n, sizeof line - (size_t)n, "%s%s", j ? "," : "", clients[r].name);
        }
        n += snprintf(line + n, sizeof line - (size_t)n, " :%s\r\n", text);
        write_client(c, line, (size_t)n);
    }
    sent += count;
    expected += count * k;
}

static long local_expected(void) {
    if (workload == BROADCAST || workload == ROOM) return broadcast_sender ? sent * (nclients - 1) : 0;
    return expected;
}

/* Churn for `seconds`, then let the cycles under way finish (msgsvc.bench.worker.Worker._churn). */
static void churn(double seconds) {
    sent = expected = delivered = 0;
    start_ns = now_ns();
    int64_t end = start_ns + (int64_t)(seconds * 1e9);
    churning = 1;
    for (int i = 0; i < nclients; i++) start_cycle(&clients[i]);
    for (;;) {
        poll_once(1);
        if (churning && now_ns() >= end) churning = 0;
        if (churning) continue;
        int open = 0;
        for (int i = 0; i < nclients; i++) open += clients[i].fd >= 0;
        if (!open) return;
    }
}

/* Idle: hold every connection for `seconds`, answering PINGs. */
static void idle(double seconds) {
    sent = expected = delivered = 0;
    start_ns = now_ns();
    int64_t end = start_ns + (int64_t)(seconds * 1e9);
    while (now_ns() < end) poll_once(100);
}

/* Send for `seconds`, then wait for what is in flight (msgsvc.bench.worker.Worker._drive). */
static void drive(double seconds) {
    sent = expected = delivered = 0;
    start_ns = now_ns();
    int64_t end = start_ns + (int64_t)(seconds * 1e9);
    for (;;) {
        int64_t now = now_ns();
        long left = count_limit ? count_limit - sent : 5000;
        if (now >= end || left <= 0) break;
        long due;
        if (rate <= 0) {
            due = window_ - in_flight();
            if (workload != UNICAST) due /= workload == BROADCAST || workload == ROOM ? receivers : recipients;
        } else {
            due = (long)(rate * (double)(now - start_ns) / 1e9) - sent;
        }
        if (due > 5000) due = 5000;
        if (due > left) due = left;
        if (due > 0) send_some(due, now);
        poll_once(1);
    }
    int64_t deadline = now_ns() + (int64_t)(drain * 1e9);
    long seen = -1;
    int64_t quiet_since = now_ns();
    while (now_ns() < deadline) {
        if (expected && delivered >= local_expected()) break;
        if (delivered != seen) {
            seen = delivered;
            quiet_since = now_ns();
        } else if (!local_expected() && now_ns() - quiet_since > 1000000000LL) {
            break;
        }
        poll_once(10);
    }
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec / 1e6;
}

static void print_result(double cpu) {
    printf("{\"result\": {\"connected\": %d, \"sent\": %ld, \"expected\": %ld, \"delivered\": %ld, "
           "\"start_ns\": %lld, \"last_delivery_ns\": %lld, \"cpu\": %.3f, \"lost_connections\": %ld, "
           "\"refusals\": [], \"latency\": {\"counts\": {",
           nclients, sent, expected, delivered, (long long)start_ns, (long long)last_delivery_ns, cpu,
           lost_connections);
    int first = 1;
    for (int shift = 0; shift <= SHIFTS; shift++)
        for (int top = 0; top < 1024; top++)
            if (hist[shift][top]) {
                long long low = shift ? (long long)top << shift : top;
                printf("%s\"%lld\": %llu", first ? "" : ", ", low, (unsigned long long)hist[shift][top]);
                first = 0;
            }
    printf("}, \"max\": %lld}}}\n", (long long)hist_max);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 19) {
        fprintf(stderr, "usage: see msgsvc/bench/loadc.c\n");
        return 2;
    }
    dialect = !strcmp(argv[1], "msgsvc")       ? MSGSVC
              : !strcmp(argv[1], "words")      ? WORDS
              : !strcmp(argv[1], "msgsvc-irc") ? MSGSVC_IRC
                                               : NGIRCD;
    const char *host = argv[2];
    const char *ports = argv[3];
    const char *prefix = argv[4];
    nclients = atoi(argv[5]);
    workload = !strcmp(argv[6], "unicast")     ? UNICAST
               : !strcmp(argv[6], "multicast") ? MULTICAST
               : !strcmp(argv[6], "broadcast") ? BROADCAST
               : !strcmp(argv[6], "room")      ? ROOM
               : !strcmp(argv[6], "connect")   ? CONNECT
                                               : IDLE;
    rate = atof(argv[7]);
    window_ = atol(argv[8]);
    count_limit = atol(argv[9]);
    recipients = atoi(argv[10]);
    size = atoi(argv[11]);
    duration = atof(argv[12]);
    warmup = atof(argv[13]);
    broadcast_sender = atoi(argv[14]);
    receivers = atoi(argv[15]);
    drain = atof(argv[16]);
    password = argv[17];
    at_once = atoi(argv[18]);
    if (recipients > 64) recipients = 64;
    rng ^= (uint64_t)getpid() << 17;
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll");
    for (const char *p = ports; *p && nports < MAX_PORTS; p = strchr(p, ',') ? strchr(p, ',') + 1 : "") {
        struct sockaddr_in *a = &server_addrs[nports++];
        *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(p))};
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) die("address");
    }
    if (!nports) die("ports");
    if (workload == CONNECT) { /* half the names churn at a time while the other half rest */
        npool = pool_len = nclients;
        nclients = npool / 2 > 0 ? npool / 2 : 1;
        pool = calloc((size_t)npool, sizeof *pool);
        pool_names = calloc((size_t)npool, sizeof *pool_names);
        for (int i = 0; i < npool; i++) {
            pool[i] = i;
            snprintf(pool_names[i], sizeof pool_names[i], "%s%d", prefix, i);
        }
    }
    clients = calloc((size_t)nclients, sizeof *clients);
    for (int i = 0; i < nclients; i++) {
        clients[i].fd = -1;
        clients[i].name_index = i;
        snprintf(clients[i].name, sizeof clients[i].name, "%s%d", prefix, i);
    }
    int in = workload == CONNECT ? 0 : connect_all();
    if (refused)
        printf("{\"ready\": [%d, [\"%d refused or cut off during the ramp; the first, %s\"]]}\n", in, refused,
               refusal);
    else
        printf("{\"ready\": [%d, []]}\n", in);
    fflush(stdout);
    char command[64];
    while (fgets(command, sizeof command, stdin)) {
        if (!strncmp(command, "warm", 4)) {
            if (warmup > 0 && workload != CONNECT && workload != IDLE) drive(warmup);
            memset(hist, 0, sizeof hist);
            hist_max = 0;
            last_delivery_ns = 0;
            printf("{\"warm\": true}\n");
            fflush(stdout);
        } else if (!strncmp(command, "go", 2)) {
            double before = cpu_seconds();
            if (workload == CONNECT)
                churn(duration);
            else if (workload == IDLE)
                idle(duration);
            else
                drive(duration);
            print_result(cpu_seconds() - before);
        } else if (!strncmp(command, "quit", 4)) {
            break;
        }
    }
    return 0;
}
