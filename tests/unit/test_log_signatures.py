"""Error signatures in log lines, and the remote they name."""

from __future__ import annotations

import pytest

from aisre.agents.log_signatures import classify, is_error, remote_of


@pytest.mark.parametrize(
    ("line", "signature", "host", "port"),
    [
        # An address by number: no name, but its port still says which peer it is.
        ("2026-01-01T00:00:00Z ERROR dial tcp 10.0.0.7:5432: connect: connection refused", "connection_refused", None, 5432),
        # A source file and line in a caller field is not a peer.
        ('{"level":"error","caller":"cmd/gateway/main.go:45","msg":"request failed","error":"connection refused"}',
         "connection_refused", None, None),
        ("[2026-11-26 16:20:52.118][31][warning][config] [source/common/upstream/health_checker_impl.cc:188] "
         "health check failed: connection refused", "connection_refused", None, None),
        ("TypeError: fetch failed at node:internal/deps/undici/undici:13185:13 cause: ConnectTimeoutError", "timeout", None, None),
        ("ERROR could not connect to orders-db:5432: Connection refused", "connection_refused", "orders-db", 5432),
        # gRPC status codes as clients print them.
        ('level=error msg="list failed" error="rpc error: code = Unavailable desc = transport is closing"',
         "connection_refused", None, None),
        ("ERROR rpc error: code = Unauthenticated desc = invalid API key", "auth_failure", None, None),
        ('level=error msg="quote failed" target="dns:///pricer.shop.svc.cluster.local:50051" '
         'error="rpc error: code = Unimplemented desc = unexpected HTTP status code received from server: 404"',
         "wrong_listener", "pricer", 50051),
        ("grpc._channel._InactiveRpcError: status = StatusCode.UNIMPLEMENTED details = "
         "\"Received http2 header with status: 404\"", "wrong_listener", None, None),
        ("E1206 checkout failed: rpc error: code = Internal desc = payment declined by processor", "peer_error", None, None),
        ("MongoServerError: UserNotFound: Could not find user \"app\" for db \"admin\"", "auth_failure", None, None),
        ("psycopg2.OperationalError: could not connect to server: Connection refused. Is the server running on host \"ledger-db\"",
         "connection_refused", "ledger-db", None),
        ('Get "http://payments.shop.svc.cluster.local:8080/api": dial tcp: lookup payments.shop.svc.cluster.local: no such host',
         "dns_failure", "payments", 8080),
        ("redis: dial tcp redis-cache:6379: i/o timeout", "timeout", "redis-cache", 6379),
        ("FATAL: password authentication failed for user \"app\"", "auth_failure", None, None),
        ("exec /usr/local/bin/server: exec format error", "exec_format", None, None),
        ('pods is forbidden: User "system:serviceaccount:shop:ledger" cannot list resource "pods" in API group "" in the namespace "shop"',
         "forbidden", None, None),
        ("accept4: too many open files; retrying in 5ms", "too_many_files", None, None),
        ("panic: runtime error: invalid memory address or nil pointer dereference", "panic", None, None),
        ("Traceback (most recent call last):", "panic", None, None),
        ("yaml: line 4: mapping values are not allowed in this context (while parsing config)", "config_parse", None, None),
        ("java.lang.OutOfMemoryError: Java heap space", "oom", None, None),
        ("pymongo.errors.ServerSelectionTimeoutError: orders-mongo-0.orders-mongo:27017: No servers available", "no_servers",
         "orders-mongo-0", 27017),
        ("ERR max number of clients reached", "too_many_connections", None, None),
        ('FATAL:  sorry, too many clients already', "too_many_connections", None, None),
        ("x509: certificate signed by unknown authority (dial tcp ledger-pg:5432)", "tls_failure", "ledger-pg", 5432),
        ("upstream request to http://pricing:8080/quote failed with status 503", "peer_error", "pricing", 8080),
        ("level=fatal msg=\"required environment variable SMTP_HOST is not set\"", "missing_setting", None, None),
        ("KeyError: 'STRIPE_API_KEY'", "missing_setting", None, None),
        ("Could not resolve placeholder 'payments.gateway.url' in value \"${payments.gateway.url}\"", "missing_setting", None, None),
        ("config file /etc/relay/relay.yaml not found", "missing_setting", None, None),
        ("KeyError: 'items'", "panic", None, None),
        ('{"level":"fatal","msg":"invalid configuration","error":"required key STRIPE_SECRET_KEY missing value"}',
         "missing_setting", None, None),
        ('FATAL: no pg_hba.conf entry for host "10.0.1.37", user "orders_app", database "orders"', "auth_failure", None, None),
        ("Connect Timeout Error (attempted address: product-catalog:8080, timeout: 10000ms)", "timeout", "product-catalog", 8080),
        ("RedisClient::CommandError (OOM command not allowed when used memory > 'maxmemory'.)", "peer_full", None, None),
        ("/app/settings.py:22: UserWarning: SENTRY_DSN is not set; error reporting disabled", None, None, None),
    ],
)
def test_signatures(line: str, signature: str | None, host: str | None, port: int | None) -> None:
    found = classify(line)
    if signature is None:
        assert found is None
        return
    assert found is not None and found.signature == signature
    assert (found.host, found.port) == (host, port)


def test_the_whole_host_is_kept() -> None:
    found = classify("pymongo.errors.ServerSelectionTimeoutError: orders-mongo-0.orders-mongo:27017: No servers available")
    assert found is not None and found.fqdn == "orders-mongo-0.orders-mongo"


def test_rbac_detail() -> None:
    found = classify('secrets is forbidden: User "system:serviceaccount:ns1:reporter" cannot get resource "secrets" in API group ""')
    assert found and found.detail == {"namespace": "ns1", "sa": "reporter", "verb": "get", "resource": "secrets", "group": ""}


@pytest.mark.parametrize("line", ["INFO server listening on :8080", "GET /healthz 200 1ms", "connected to db:5432"])
def test_normal_lines_are_not_errors(line: str) -> None:
    assert classify(line) is None
    assert not is_error(line)


def test_remote_ignores_ip_addresses_and_localhost() -> None:
    assert remote_of("dial tcp 127.0.0.1:5432") == (None, None)
    assert remote_of("connect to localhost:6379 failed") == (None, None)
    assert remote_of("upstream http://cart:8080/v1 failed") == ("cart", 8080)


def test_a_loopback_address_is_marked_as_the_clients_own() -> None:
    found = classify("%3|1795594562.771|FAIL|rdkafka#consumer-1| [thrd:localhost:9092/0]: localhost:9092/0: "
                     "Connect to ipv4#127.0.0.1:9092 failed: Connection refused")
    assert found is not None and (found.host, found.port, found.loopback) == (None, 9092, True)
    remote = classify("ERROR dial tcp 127.0.0.1:6379 failed, then dial tcp 10.1.2.3:6380: connect: connection refused")
    assert remote is not None and (remote.port, remote.loopback) == (6380, False)  # a remote address wins


def test_an_rbac_refusal_is_read_inside_a_json_body_too() -> None:
    line = ('ERROR - Exception when calling create_namespaced_pod: (403) Reason: Forbidden HTTP response body: '
            '{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods is forbidden: User '
            '\\"system:serviceaccount:etl:etl-runner\\" cannot create resource \\"pods\\" in API group \\"\\" in the '
            'namespace \\"etl\\"","reason":"Forbidden","code":403}')
    found = classify(line)
    assert found is not None and found.signature == "forbidden"
    assert found.detail == {"namespace": "etl", "sa": "etl-runner", "verb": "create", "resource": "pods", "group": ""}


def test_a_4xx_for_a_named_url_is_the_peer_rejecting_but_an_access_log_is_not() -> None:
    rejected = classify("ERROR c.x.y.Client : create failed: HTTP 400 Bad Request from http://q7-api/v1/items body=\"\"")
    assert rejected is not None and (rejected.signature, rejected.host) == ("peer_rejects", "q7-api")
    assert classify("Client error '403 Forbidden' for url 'http://q7-api.ns.svc.cluster.local/x'").signature == "peer_rejects"
    # A server's own access log, a 404 and a throttle are something else.
    assert classify('10.0.0.9 - - [12/Nov/2025:10:03:41 +0000] "POST /x HTTP/1.1" 400 143 "-" "ua/1"') is None
    assert classify("HTTP 404 Not Found from http://q7-api/v1/items/9") is None
    assert classify("HTTP 429 Too Many Requests from http://q7-api/v1").signature == "peer_full"


@pytest.mark.parametrize("line", ['npm error Missing script: "start:prod"', 'error Command "serve" not found.',
                                  "Error: No such command 'wrker'.", "Unknown command: 'migrat'"])
def test_a_launcher_without_the_script_or_subcommand_is_a_bad_command(line: str) -> None:
    assert classify(line).signature == "bad_args"


@pytest.mark.parametrize(("line", "signature", "host"), [
    ('"err":"POST http://q7-engine/v1/quotes: 500 Internal Server Error"', "peer_error", "q7-engine"),
    ("thread 'tokio-runtime-worker' panicked at src/quote/multileg.rs:142:58:", "panic", None),
    ("UnavailableException: Not enough replicas available for query at consistency LOCAL_QUORUM (2 required but only 1 alive)",
     "no_servers", None),
    ("[Consumer clientId=c-1] Connection to node -1 (k4/10.0.0.70:9092) could not be established. Broker may not be available.",
     "connection_refused", None),
])
def test_runtime_and_client_wordings(line: str, signature: str, host: str | None) -> None:
    found = classify(line)
    assert found is not None and (found.signature, found.host) == (signature, host)


def test_a_programs_own_memory_readings_and_whether_they_climb() -> None:
    from aisre.agents.log_signatures import climbing, memory_figures

    line = '{"msg":"stats","cacheEntries":412880,"rssMB":388,"heapUsedMB":301,"heapLimitMB":1536,"reqPerMin":5120}'
    assert memory_figures(line) == [("rssMB", 388.0), ("heapUsedMB", 301.0)]
    assert memory_figures("gc done heap_alloc=123456 heap_max=999999 mem_free=5 took=3ms") == [("heap_alloc", 123456.0)]
    assert memory_figures("Memory usage: 512MB of 1024MB") == []  # no key=value reading, no guess
    assert memory_figures("served 200 in 5ms") == []
    assert climbing([388, 561, 742, 918])
    assert climbing([100, 99, 150, 160])  # a 1 % dip is noise
    assert not climbing([388, 561])  # two readings are no trend
    assert not climbing([400, 410, 420])  # up, but only 5 %: a settled heap
    assert not climbing([388, 700, 300, 918])  # it came back down: the GC works


def test_an_nginx_error_names_its_peer_only_in_the_upstream_field() -> None:
    from aisre.agents.log_signatures import classify

    by_address = classify('2026/12/04 09:33:12 [error] 23#23: *1181 connect() failed (111: Connection refused) while '
                          'connecting to upstream, client: 10.0.0.1, server: support.example.com, request: "GET /help '
                          'HTTP/1.1", upstream: "http://10.0.0.201:80/help", host: "support.example.com"')
    assert by_address is not None and (by_address.signature, by_address.host, by_address.port) == ("connection_refused", None, 80)
    by_name = classify('2026/12/04 09:33:12 [error] 7#7: *9 upstream timed out (110: Connection timed out) while reading '
                       'response header from upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", '
                       'upstream: "http://checkout.shop.svc.cluster.local:8080/", host: "shop.example.com"')
    assert by_name is not None and (by_name.host, by_name.port) == ("checkout", 8080)


@pytest.mark.parametrize(
    ("line", "signature", "host"),
    [
        # An access log's user agent and referer name the caller's world, never the peer.
        ('3.18.12.63 - - [04/Mar/2026:14:22:14 +0000] "POST /hooks/in HTTP/1.1" 503 190 "https://shop.example/" '
         '"PayHub/1.0 (+https://payhub.example/docs)" 2417 0.000 [ns-hooks-8080] [] - - - - 5e0f', "peer_error", None),
        # Its upstream, written as host:port in a quoted field, still is.
        ('[2026-02-26T16:41:19Z] "GET /api/basket HTTP/1.1" 503 UF 0 0 1 - "198.51.100.7" "curl/8" "1b7e" "api.example" '
         '"basket:8080"', "peer_error", "basket"),
        # A proxy (or the API server) on a Service with nothing behind it names the Service.
        ('W0304 14:22:09.118211 7 controller.go:1216] Service "shop/hooks" does not have any active Endpoint.', "no_servers",
         "hooks"),
        ('Error from server (ServiceUnavailable): no endpoints available for service "ledger"', "no_servers", "ledger"),
        # A database that takes no writes, and a DCS out of space: the peer's side.
        ("ERROR: cannot execute INSERT in a read-only transaction", "no_servers", None),
        ('{"level":"warn","msg":"failed to apply request","error":"etcdserver: mvcc: database space exceeded"}', "peer_full",
         None),
    ],
)
def test_access_logs_and_empty_services_name_the_right_peer(line: str, signature: str, host: str | None) -> None:
    found = classify(line)
    assert found is not None and (found.signature, found.host) == (signature, host)


def test_an_access_line_says_what_status_the_program_answered() -> None:
    from aisre.agents.log_signatures import served_status

    assert served_status('10.0.0.1 - - [x] "GET /a HTTP/2.0" 502 0 "-" "ua"') == 502
    assert served_status("ERROR GET /a failed with 502") is None


def test_a_json_logs_at_timestamp_key_is_no_host_but_user_at_host_is() -> None:
    line = '{"@timestamp":"2026-03-18T08:41:25Z","log.level":"ERROR","message":"journal write failed: connection refused"}'
    assert classify(line).host is None
    assert remote_of("ERROR could not connect: replicator@ledger-db refused the connection")[0] == "ledger-db"


def test_a_404_is_a_peers_rejection_only_when_the_client_reports_it_as_an_error() -> None:
    failed = ('{"level":"error","msg":"fetch failed","err":"Request failed with status code 404","data":"404 page not '
              'found","url":"http://q7.ns.svc.cluster.local/v1/x"}')
    found = classify(failed)
    assert found is not None and (found.signature, found.host) == ("peer_rejects", "q7")
    assert classify(failed.replace('"level":"error"', '"level":"info"')) is None  # an ordinary "no such thing"


def test_a_programs_own_leak_detector_is_a_leak_signature() -> None:
    for line in ("SEVERE: LEAK: ByteBuf.release() was not called before it's garbage-collected.",
                 "(node:1) MaxListenersExceededWarning: Possible EventEmitter memory leak detected. 11 listeners added",
                 "==1==ERROR: LeakSanitizer: detected memory leaks"):
        found = classify(line)
        assert found is not None and found.signature == "leak", line
    assert classify("GET /leaky-bucket/limits 200 3ms") is None
