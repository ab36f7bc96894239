"""Error signatures recognised in log lines: pure regular expressions, no I/O.

Each signature says what kind of failure a line reports and, where the line names one,
the remote host and port (so a client failing to reach ``db:5432`` can be linked to the
``db`` Service). Kept apart from the logs agent so it is tested on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aisre.api.evidence import PEER_SIGNATURES

PEER_NOT_FOUND = re.compile(r"\b404\b[^\n]{0,40}?\b(from|for url|calling|url)[ :='\"]*https?://", re.I)

# Ordered: the first matching signature names the line.
SIGNATURES: list[tuple[str, re.Pattern[str]]] = [
    ("exec_format", re.compile(r"exec format error", re.I)),
    ("forbidden", re.compile(r"\bforbidden\b.*\bcannot\b|\bis forbidden\b|RBAC: access denied", re.I)),
    # Configuration the program looked for and did not find: it names what is missing.
    ("missing_setting", re.compile(
        r"(environment variable|env var|setting|config(uration)? (key|value|option)|required (option|setting|variable|parameter|flag))"
        r".{0,60}\b(not set|unset|missing|required|undefined|empty|not defined|not provided|must be (set|provided))"
        r"|missing required (env|environment|config|configuration|setting|option|key|variable|parameter|flag)"
        r"|(?-i:\b[A-Z][A-Z0-9]*(_[A-Z0-9]+)+\b).{0,30}\b(is not set|not set|must be set|is required|is missing|is empty|not defined|missing value|has no value|is undefined)"
        r"|required key \S+ missing"
        r"|(?-i:KeyError: '[A-Z][A-Z0-9]*(_[A-Z0-9]+)*')|Could not resolve placeholder|ImproperlyConfigured"
        r"|(config(uration)?|settings|properties|credentials?)( data)? (file|resource|location|path)\b.{0,120}\b(not found|does not exist|missing|no such file|could not be (found|read|opened))",
        re.I)),
    # The program rejects its own command line: the container's command or args are wrong.
    ("bad_args", re.compile(
        r"flag provided but not defined|unknown (shorthand )?flag\b|unknown command \S+ for|unrecognized (arguments?|option)"
        r"|invalid option --|error: unexpected argument|error: (unknown|unrecognized) (option|argument)"
        r"|^\s*usage: [\w./-]+ \["
        # A launcher asked for a script or subcommand it does not have (npm, yarn, click, Django, Rails, Thor).
        r"|\bMissing script: |error Command \"[^\"]+\" not found|Error: No such command|Unknown command: '?\w"
        r"|Could not find command \"", re.I)),
    # The program's own disk is full (a volume it writes to, or the node's disk under it).
    ("disk_full", re.compile(r"no space left on device|ENOSPC|disk (is )?full|could not (extend|write to) file.*space", re.I)),
    # What answers speaks another protocol: the Service sends the client to the wrong listener.
    ("wrong_listener", re.compile(
        r"malformed HTTP response|http2: frame too large|server preface|PROTOCOL_ERROR|code = Unimplemented"
        r"|unexpected HTTP status code received from server: 4\d\d|received unexpected content-type"
        r"|first record does not look like a TLS handshake|gave HTTP response to HTTPS client|wrong version number"
        r"|StatusCode\.UNIMPLEMENTED|http2 header with status: 4\d\d", re.I)),
    ("dns_failure", re.compile(
        r"no such host|name or service not known|NXDOMAIN|could not resolve|temporary failure in name resolution"
        r"|getaddrinfo (ENOTFOUND|EAI_AGAIN)|unknown host|UnknownHostException|nodename nor servname", re.I)),
    # A dependency that answers but refuses its clients: credentials, TLS, capacity, or none
    # of its servers usable (the client reaches it; the dependency's side is wrong).
    ("tls_failure", re.compile(
        r"x509: |certificate (verify failed|has expired|is not valid|signed by unknown authority)|tls: (handshake|bad certificate|failed)"
        r"|SSL(Handshake)?Exception|SSL routines|handshake failure|PKIX path building failed", re.I)),
    ("too_many_connections", re.compile(
        r"too many (connections|clients)|remaining connection slots are reserved|max(imum)? number of clients reached"
        r"|connection limit (exceeded|reached)|max_connections|ERR max number of clients|Too many open connections", re.I)),
    ("no_servers", re.compile(
        r"no reachable servers|server selection (error|timeout|timed out)|No servers? available|all (nodes|hosts|servers|brokers) (failed|down|unavailable)"
        r"|NoBrokersAvailable|no brokers? (available|found)|CLUSTERDOWN|Could not connect to any (servers|hosts)|NoHostAvailable"
        r"|failed to connect to all addresses|no healthy upstream|upstream connect error|MasterNotFound|No master|not the leader"
        r"|READONLY You can't write|LOADING Redis is loading"
        r"|does not have any active endpoints?|no endpoints available for service"
        # A database that takes no writes: the client reached a replica or a demoted primary.
        r"|cannot execute \w+ in a read-only transaction|read-only replica|is in read-only mode"
        r"|Not enough replicas available for query|Cannot achieve consistency level|NOT_ENOUGH_REPLICAS", re.I)),
    # A dependency that is full or throttling: it refuses writes or requests until it has room.
    ("peer_full", re.compile(
        r"OOM command not allowed|used memory > 'maxmemory'|cluster_block_exception|index read-only|read-only-allow-delete"
        r"|disk usage exceeded|quota exceeded|429 Too Many Requests|TOO_MANY_REQUESTS"
        r"|database space exceeded|alarm:\s*NOSPACE|\bNOSPACE\b"
        r"|rate limit(ed| exceeded)|throttl(ed|ing) request|ServerBusy|Service is overloaded|code = ResourceExhausted", re.I)),
    ("connection_refused", re.compile(
        r"connection refused|ECONNREFUSED|actively refused|connect: connection reset|connection reset by peer|ECONNRESET"
        r"|code = Unavailable|StatusCode\.UNAVAILABLE|status: Unavailable"
        r"|could not be established\. Broker may not be available", re.I)),  # the Kafka client's refusal
    ("timeout", re.compile(
        r"i/o timeout|timed out|deadline exceeded|ETIMEDOUT|connect(ion)?[ _-]?time-?out|context deadline|timeout (after|while|waiting)",
        re.I)),
    ("auth_failure", re.compile(
        r"authentication failed|password authentication|access denied for user|invalid (credentials|password|token|username or password)"
        r"|\b401\b|unauthori[sz]ed|auth(entication)? error|NOAUTH|WRONGPASS|SASL authentication|not authorized|AuthenticationFailed"
        r"|Login failed for user|bad (username|user name) or password|no pg_hba\.conf entry|authentication (is )?required"
        r"|UserNotFound|Could not find user|requires authentication|code = (Unauthenticated|PermissionDenied)"
        r"|StatusCode\.(UNAUTHENTICATED|PERMISSION_DENIED)", re.I)),
    # A backend that answers with server errors (an HTTP 5xx from a named peer).
    ("peer_error", re.compile(
        r"\b(status(code)?|code|HTTP/\d(\.\d)?|response|returned|got)[ =:\"]*5\d\d\b|\b50[234] (Bad Gateway|Service Unavailable|Gateway Time-?out)\b"
        r"|https?://\S+:? 5\d\d\b|\b500 Internal Server Error\b"
        r"|\bupstream (prematurely closed|timed out)|code = (Internal|Unknown|DataLoss)"
        r"|StatusCode\.(INTERNAL|UNKNOWN)", re.I)),
    # A backend that answers and rejects the request itself (an HTTP 4xx, not 404 or 429, for
    # a URL the line names): the contract between the two changed on one side.
    ("peer_rejects", re.compile(
        r"\b4(0[0-35-9]|1\d|2[0-8]|3[01])\b[^\n]{0,40}?\b(from|for url|calling|url)[ :='\"]*https?://", re.I)),
    # A 404 for a URL the client calls, when the client reports it as an error: what answers
    # does not serve that path (a Service sent to another listener, an API removed). A 404 at
    # a lower level is an ordinary answer ("no such order"), so only error lines count
    # (``classify``).
    ("peer_rejects", PEER_NOT_FOUND),
    ("oom", re.compile(r"OutOfMemoryError|out of memory|cannot allocate memory|JavaScript heap out of memory", re.I)),
    # The program's own leak detector (Netty's, Node's listener check, sanitizers): memory it
    # holds on to by mistake, by its own account.
    ("leak", re.compile(r"memory leak|\bLEAK:|\.release\(\) was not called|LeakSanitizer|detected memory leaks"
                        r"|leaked \d+ (bytes|objects|buffers)", re.I)),
    ("too_many_files", re.compile(r"too many open files|EMFILE", re.I)),
    ("permission_denied", re.compile(r"permission denied|EACCES|operation not permitted|read-only file system", re.I)),
    ("config_parse", re.compile(
        r"(yaml|json|toml|ini|config(uration)?)\b.*\b(parse|parsing|unmarshal|syntax|invalid|malformed)"
        r"|(parse|parsing|unmarshal|syntax) error|invalid (config|configuration|value for)|unknown (field|key|option|directive)"
        r"|failed to (load|read|parse) (config|configuration|settings)", re.I)),
    ("missing_file", re.compile(r"no such file or directory|FileNotFoundError|ENOENT|not found in \$PATH", re.I)),
    ("panic", re.compile(
        r"^panic:|goroutine \d+ \[running\]|Traceback \(most recent call last\)|Exception in thread|^thread '[^']*' panicked at"
        r"|^\s+at [\w.$<>]+\(.*(\.java|\.kt|\.scala):\d+\)|Unhandled(Promise)?Rejection|uncaught exception"
        r"|segmentation fault|SIGSEGV|fatal error:|NullPointerException|TypeError:|KeyError:|AttributeError:", re.I)),
]

ERROR_LEVEL = re.compile(
    r"\b(ERROR|ERR|FATAL|CRITICAL|CRIT|PANIC|SEVERE|EMERG)\b|level=(error|fatal)|\"level\":\s*\"(error|fatal)\""
    r"|\"level\":\s*(50|60)\b", re.I)  # the last: pino/bunyan's numeric levels

# host:port, URLs and "connect to host" phrases; the host is the first DNS label.
HOST_PORT = re.compile(
    r"(?:(?:[a-z][a-z0-9+.-]*):///?(?:[^@/\s]+@)?|\bdial tcp\s+|\bconnect(?:ing)? to\s+|\bhost[=:\s]+\"?|(?<=[\w.-])@)"
    r"(?P<host>[a-zA-Z0-9][a-zA-Z0-9-]*(?:\.[a-zA-Z0-9-]+)*)(?::(?P<port>\d{2,5}))?"
    r"|(?<![\w./])(?P<host2>[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*):(?P<port2>\d{2,5})\b(?!:\d)",  # not file:line:col
    re.I,
)
# The API server's refusal, as a client prints it: plain, or inside a JSON body with its
# quotes escaped (``User \"system:serviceaccount:…\"``, as the Python client's ApiException does).
QUOTE = r'\\*"'
RBAC_SUBJECT = re.compile(
    rf'User {QUOTE}system:serviceaccount:(?P<namespace>[^:"\\]+):(?P<sa>[^"\\]+){QUOTE} cannot (?P<verb>\w+) resource '
    rf'{QUOTE}(?P<resource>[^"\\]+){QUOTE}(?: in API group {QUOTE}(?P<group>[^"\\]*){QUOTE})?',
)
NOT_HOSTS = {"localhost", "127", "0", "http", "https", "tcp", "udp", "line", "file", "server", "the", "remote", "host",
             "ipv4", "ipv6", "upstream"}
# An nginx proxy's error line names its peer in one field, `upstream: "http://10.0.0.7:80/path"`;
# its `host:`, `server:` and `client:` fields are the request's Host header, its own
# server_name and the caller, never the peer.
NGINX_UPSTREAM = re.compile(r'\bupstream: "(?P<url>[a-z][a-z0-9+.-]*://[^"/\s]+)')
# `main.go:45`, `server.cc:936`: a source file and line in a log's caller field, not a peer.
SOURCE_FILE = re.compile(r"\.(go|cc|cpp|c|h|hpp|py|java|kt|scala|js|mjs|ts|rb|rs|cs|php|ex|exs|erl)$", re.I)
QUOTED_HOST = re.compile(r"\bhost\s+\"(?P<host>[a-zA-Z0-9][a-zA-Z0-9.-]*)\"", re.I)
# `Service "shop/payments"` (a proxy or the API server on a Service with no endpoints).
QUOTED_SERVICE = re.compile(r'\bservice\s+\\?"(?:(?P<namespace>[a-z0-9][a-z0-9-]*)/)?(?P<host>[a-z0-9][a-z0-9-]*)\\?"', re.I)
# An access log's record of a request the program served (`"GET /x HTTP/1.1" 503`): its
# quoted fields after the request are the referer, the user agent and the Host header, which
# name the caller's world (`Stripe/1.0 (+https://stripe.com/…)`), never the peer.
ACCESS_LOG = re.compile(r'"(?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|CONNECT|TRACE) \S+ HTTP/[\d.]+" (?P<status>\d{3})\b')
QUOTED_FIELD = re.compile(r'"[^"]*"')
HOST_PORT_FIELD = re.compile(r'"[\w.-]+:\d{2,5}"')


@dataclass(frozen=True)
class LineSignature:
    signature: str
    host: str | None = None  # the first DNS label: a Service's name in the namespace
    port: int | None = None  # with no host: the port of an address the line names (an IP, loopback)
    detail: dict[str, str] | None = None
    fqdn: str | None = None  # the whole name, for `pod-0.headless` or `svc.other-ns` forms
    loopback: bool = False  # the address is the client's own (localhost, 127.0.0.1, ::1)


# An address given by number (or as loopback) rather than by name: only its port says which
# peer it is, and a loopback one says the client was sent to itself.
ADDRESS_PORT = re.compile(r"(?<![\w.-])(?P<address>localhost|(?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-f:]+\])[:/](?P<port>\d{2,5})\b", re.I)
LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$", re.I)


def address_port(line: str) -> tuple[int | None, bool]:
    """The port of the first address a line names by number or as loopback, and whether it
    is loopback. Any address that is not loopback wins over a loopback one."""
    found = [(m.group("port"), bool(LOOPBACK.match(m.group("address")))) for m in ADDRESS_PORT.finditer(line)]
    found.sort(key=lambda item: item[1])
    return (int(found[0][0]), found[0][1]) if found else (None, False)


def remote_of(line: str) -> tuple[str | None, int | None]:
    """The remote a line names: host:port first, then host "x", then a bare host."""
    host, port, _ = remote_name(line)
    return host, port


def remote_name(line: str) -> tuple[str | None, int | None, str | None]:
    """Like ``remote_of``, with the whole host name as the line wrote it."""
    found: list[tuple[int, str, int | None]] = []
    for match in HOST_PORT.finditer(line):
        host = match.group("host") or match.group("host2")
        port = match.group("port") or match.group("port2")
        if host and not re.fullmatch(r"[\d.]+", host) and not SOURCE_FILE.search(host):
            found.append((0 if port else 2, host, int(port) if port else None))
    for match in QUOTED_HOST.finditer(line):
        if not re.fullmatch(r"[\d.]+", match.group("host")):  # a client's address, not a peer's name
            found.append((1, match.group("host"), None))
    for match in QUOTED_SERVICE.finditer(line):
        where = match.group("namespace")
        found.append((1, match.group("host") + (f".{where}" if where else ""), None))
    for _, host, port in sorted(found, key=lambda item: item[0]):
        label = host.split(".")[0].lower()
        if label not in NOT_HOSTS:
            return label, port, host.lower()
    return None, None, None


# A program that warns about a setting and carries on ("SENTRY_DSN is not set; error
# reporting disabled") is not stopped by it: only an error-level line names the missing cause.
WARNING_LEVEL = re.compile(r"\b(WARN|WARNING|UserWarning|DeprecationWarning|NOTICE)\b|level=warn|\"level\":\s*\"warn", re.I)


def _peer_text(line: str) -> str:
    """The part of a line that names its peer: an nginx error's upstream field; in an access
    log line, what is not the request or a caller's quoted field (an upstream's `"host:port"`
    stays); else all of it."""
    upstream = NGINX_UPSTREAM.search(line)
    if upstream:
        return upstream.group("url")
    if ACCESS_LOG.search(line):
        return QUOTED_FIELD.sub(lambda m: m.group(0) if HOST_PORT_FIELD.fullmatch(m.group(0)) else " ", line)
    return line


def served_status(line: str) -> int | None:
    """The status of the request an access log line records, if the line is one."""
    match = ACCESS_LOG.search(line)
    return int(match.group("status")) if match else None


def classify(line: str) -> LineSignature | None:
    for name, pattern in SIGNATURES:
        if name == "missing_setting" and WARNING_LEVEL.search(line):
            continue
        if pattern is PEER_NOT_FOUND and not declared_error(line):
            continue
        if pattern.search(line):
            detail = None
            if name == "forbidden":
                match = RBAC_SUBJECT.search(line)
                detail = {k: v for k, v in match.groupdict().items() if v is not None} if match else None
            peer = _peer_text(line)
            host, port, fqdn = remote_name(peer) if name in PEER_SIGNATURES else (None, None, None)
            loopback = False
            if name in PEER_SIGNATURES and host is None:
                port, loopback = address_port(peer)
            return LineSignature(name, host, port, detail, fqdn, loopback)
    return None


# A refusal the peer logs as it answers ("pooler error: transaction blocks not allowed in
# statement pooling mode") reaches its client as the same words. Runs of this many plain
# words shared by a client's error line and another program's warning name who refused.
ECHO_WORDS = 5
WORD_SPLIT = re.compile(r'[\s"{}\[\],;()=]+')
GENERIC_WORDS = {"error", "errors", "failed", "failure", "warning", "exception", "could", "cannot", "while", "with",
                 "from", "this", "that", "request", "response", "connection", "unable", "info", "debug", "fatal"}


def phrase_windows(line: str, size: int = ECHO_WORDS) -> set[tuple[str, ...]]:
    """Every run of ``size`` consecutive plain words of a line (identifiers, numbers and
    addresses break a run) that has at least three telling words: what can be recognised in
    another program's log."""
    out: set[tuple[str, ...]] = set()
    words: list[str] = []
    for token in [*WORD_SPLIT.split(line), ""]:
        word = token.strip(".:!?'`").lower()
        if word.isascii() and word.isalpha():
            words.append(word)
            continue
        for i in range(len(words) - size + 1):
            window = tuple(words[i:i + size])
            if sum(len(w) >= 4 and w not in GENERIC_WORDS for w in window) >= 3:
                out.add(window)
        words = []
    return out


# The level a structured line declares (`"level":"info"`, `level=warn`, `"log.level":"ERROR"`).
LEVEL_FIELD = re.compile(r'\b(?:level|severity|lvl)"?\s*[:=]\s*"?(?P<level>[a-z]+)', re.I)


def declared_error(line: str) -> bool:
    """Whether the line is an error by its own declared level (an `err` field in an info
    line is not), or, with none declared, by its wording."""
    declared = LEVEL_FIELD.search(line)
    if declared:
        return declared.group("level").lower() in ("error", "err", "fatal", "critical", "crit", "panic", "severe", "emerg")
    return bool(ERROR_LEVEL.search(line))


def is_error(line: str) -> bool:
    return bool(ERROR_LEVEL.search(line)) or classify(line) is not None


# A program's own memory figures in its log lines (JSON or key=value): rssMB, heapUsed,
# mem_bytes, "working_set": … The key names memory; a configured bound (limit, max, total,
# free, available) is not a reading.
MEMORY_FIGURE = re.compile(
    r"\"?(?P<key>[A-Za-z_]*(?:rss|heap|mem(?:ory)?|resident|working_?set)[A-Za-z_]*)\"?\s*[:=]\s*\"?"
    r"(?P<value>\d+(?:\.\d+)?)", re.I)
NOT_A_READING = re.compile(r"limit|max|total|free|avail|size_?limit|request", re.I)


def memory_figures(line: str) -> list[tuple[str, float]]:
    """The memory readings a log line reports, as (key, value): units cancel in a trend."""
    return [(m.group("key"), float(m.group("value"))) for m in MEMORY_FIGURE.finditer(line)
            if not NOT_A_READING.search(m.group("key"))]


def climbing(values: list[float], *, min_readings: int = 3, min_ratio: float = 1.5, dip: float = 0.02) -> bool:
    """Readings that only go up (dips within ``dip`` aside) and end ``min_ratio`` times where
    they began: a run's memory that never came back down."""
    if len(values) < min_readings or values[0] <= 0:
        return False
    return all(b >= a * (1 - dip) for a, b in zip(values, values[1:])) and values[-1] >= min_ratio * values[0]
