// Command faultapp is the project's test workload for the real node
// (registry.local/faultapp:1): one small program whose behaviour, good or bad, is chosen by
// flags, so a scenario says what breaks and the kubelet reports it for real.
//
//	faultapp --print "starting" --exit 1                 print, then exit with a code
//	faultapp --listen :8080                             serve HTTP (/ and /healthz answer 200,
//	                                                    other paths 404)
//	faultapp --listen :8080 --error-rate 0.3            ... answering 500 to 30% of requests
//	faultapp --connect db:5432 --every 2s               dial a dependency, log each failure
//	faultapp --alloc-mb 200                             hold 200 MiB (touched, so resident)
//	faultapp --leak-mb-per-s 5                          grow by 5 MiB a second until killed
//	faultapp --burn-cpu 2                               keep two cores busy
//	faultapp --kube-get '/api/v1/namespaces/$NAMESPACE/pods'   call the API server with the
//	                                                    pod's ServiceAccount token, log refusals
//
// Without --exit it runs until SIGTERM or SIGINT (then exits 0). Log lines go to stdout as
// "<RFC 3339 time> <LEVEL> <message>".
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

type lines []string

func (l *lines) String() string     { return strings.Join(*l, ", ") }
func (l *lines) Set(v string) error { *l = append(*l, v); return nil }

var (
	prints, connects lines
	exitCode         = flag.Int("exit", -1, "exit with this code (after --exit-after); -1: run until stopped")
	exitAfter        = flag.Duration("exit-after", 0, "wait this long before --exit")
	listen           = flag.String("listen", "", "serve HTTP on this address (:8080)")
	errorRate        = flag.Float64("error-rate", 0, "fraction of HTTP requests answered 500")
	every            = flag.Duration("every", 2*time.Second, "interval of --connect and --kube-get")
	allocMB          = flag.Int("alloc-mb", 0, "allocate and hold this many MiB at start")
	leakMBPerS       = flag.Float64("leak-mb-per-s", 0, "allocate and keep this many MiB per second")
	burnCPU          = flag.Int("burn-cpu", 0, "busy goroutines (one core each)")
	kubeGet          = flag.String("kube-get", "", "API path to GET with the ServiceAccount token every --every ($NAMESPACE: the pod's)")
	kubeServer       = flag.String("kube-server", "https://kubernetes.default.svc", "the API server (its certificate names this host)")
	printEvery       = flag.Duration("print-every", 0, "repeat the --print lines at this interval")
)

var (
	held   [][]byte
	heldMu sync.Mutex
)

func logf(level, format string, args ...any) {
	fmt.Printf("%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), level, fmt.Sprintf(format, args...))
}

// hold allocates n bytes and writes every page, so the memory is resident (and counted by
// the memory cgroup) rather than only reserved.
func hold(n int) {
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	heldMu.Lock()
	held = append(held, b)
	heldMu.Unlock()
}

func serve(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if rand.Float64() < *errorRate {
			logf("ERROR", "%s %s -> 500 internal error", r.Method, r.URL.Path)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	logf("INFO", "listening on %s", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		logf("ERROR", "listen %s: %v", addr, err)
		os.Exit(1)
	}
}

func dial(target string) {
	for {
		conn, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			logf("ERROR", "could not connect to %s: %v", target, err)
		} else {
			conn.Close()
		}
		time.Sleep(*every)
	}
}

func kubeClient() (*http.Client, string, string, error) {
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount"
	token, err := os.ReadFile(sa + "/token")
	if err != nil {
		return nil, "", "", err
	}
	pool := x509.NewCertPool()
	if ca, err := os.ReadFile(sa + "/ca.crt"); err == nil {
		pool.AppendCertsFromPEM(ca)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return client, strings.TrimSuffix(*kubeServer, "/"), strings.TrimSpace(string(token)), nil
}

// namespace is the pod's own, as its ServiceAccount volume says.
func namespace() string {
	ns, _ := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	return strings.TrimSpace(string(ns))
}

// statusMessage is what a Kubernetes client shows of an error answer: the message of the
// Status object (`pods is forbidden: User "..." cannot list ...`), else the body as it is.
func statusMessage(body []byte) string {
	var status struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &status) == nil && status.Message != "" {
		return status.Message
	}
	return strings.TrimSpace(string(body))
}

func callAPI(path string) {
	client, base, token, err := kubeClient()
	if err != nil {
		logf("ERROR", "no ServiceAccount credentials: %v", err)
		return
	}
	path = strings.ReplaceAll(path, "$NAMESPACE", namespace())
	for {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		switch {
		case err != nil:
			logf("ERROR", "GET %s: %v", path, err)
		case resp.StatusCode >= 300:
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			logf("ERROR", "GET %s: %s: %s", path, resp.Status, statusMessage(body))
		default:
			resp.Body.Close()
			logf("INFO", "GET %s: %s", path, resp.Status)
		}
		time.Sleep(*every)
	}
}

func main() {
	flag.Var(&prints, "print", "print this line at start (repeatable)")
	flag.Var(&connects, "connect", "host:port to dial every --every, logging failures (repeatable)")
	flag.Parse()

	for _, line := range prints {
		fmt.Println(line)
	}
	if *printEvery > 0 && len(prints) > 0 {
		go func() {
			for range time.Tick(*printEvery) {
				for _, line := range prints {
					fmt.Println(line)
				}
			}
		}()
	}
	if *allocMB > 0 {
		hold(*allocMB << 20)
		logf("INFO", "holding %d MiB", *allocMB)
	}
	if *leakMBPerS > 0 {
		go func() {
			step := int(*leakMBPerS * (1 << 20) / 10)
			for range time.Tick(100 * time.Millisecond) {
				hold(step)
			}
		}()
	}
	for i := 0; i < *burnCPU; i++ {
		go func() {
			for x := uint64(0); ; x++ {
				_ = x * x
			}
		}()
	}
	if *listen != "" {
		go serve(*listen)
	}
	for _, target := range connects {
		go dial(target)
	}
	if *kubeGet != "" {
		go callAPI(*kubeGet)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if *exitCode >= 0 {
		select {
		case <-time.After(*exitAfter):
			logf("INFO", "exiting with code %d", *exitCode)
			os.Exit(*exitCode)
		case <-stop:
			os.Exit(0)
		}
	}
	<-stop
	logf("INFO", "stopping")
}
