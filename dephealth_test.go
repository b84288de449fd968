package main

// dephealth_test.go: the prober against loopback servers, and the exported
// series compared with the topologymetrics SDK's output
// (TOPOLOGYMETRICS.md §1 and §5).

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// depSeries is what a scrape shows for one prober's endpoint.
type depSeries struct {
	health         []float64
	statuses       map[string]float64
	details        map[string]float64
	latencyCount   float64
	latencyBuckets int
}

func scrapeDepSeries(t *testing.T, reg *metricsRegistry) depSeries {
	t.Helper()
	_, families := render(t, reg)
	got := depSeries{statuses: map[string]float64{}, details: map[string]float64{}}
	for _, f := range families {
		for _, s := range f.samples {
			switch s.name {
			case "app_dependency_health":
				got.health = append(got.health, s.value)
			case "app_dependency_status":
				st, _ := s.label("status")
				got.statuses[st] = s.value
			case "app_dependency_status_detail":
				dt, _ := s.label("detail")
				got.details[dt] = s.value
			case "app_dependency_latency_seconds_count":
				got.latencyCount += s.value
			case "app_dependency_latency_seconds_bucket":
				got.latencyBuckets++
			}
		}
	}
	return got
}

// assertDepResult checks the state and the series after checks checks.
func assertDepResult(t *testing.T, reg *metricsRegistry, d *depHealth, wantStatus, wantDetail string, checks int) {
	t.Helper()
	healthy, checked, detail := d.State()
	if !checked || healthy != (wantStatus == "ok") || detail != wantDetail {
		t.Errorf("State() = healthy %v, checked %v, detail %q; want healthy %v, detail %q",
			healthy, checked, detail, wantStatus == "ok", wantDetail)
	}
	got := scrapeDepSeries(t, reg)
	wantHealth := 0.0
	if wantStatus == "ok" {
		wantHealth = 1
	}
	if len(got.health) != 1 || got.health[0] != wantHealth {
		t.Errorf("health series %v, want [%v]", got.health, wantHealth)
	}
	if len(got.statuses) != 8 {
		t.Errorf("got %d status series, want 8: %v", len(got.statuses), got.statuses)
	}
	for _, s := range depHealthStatuses {
		want := 0.0
		if s == wantStatus {
			want = 1
		}
		if v, ok := got.statuses[s]; !ok || v != want {
			t.Errorf("status %q = %v (present %v), want %v", s, v, ok, want)
		}
	}
	if len(got.details) != 1 || got.details[wantDetail] != 1 {
		t.Errorf("detail series %v, want only %q=1", got.details, wantDetail)
	}
	if got.latencyCount != float64(checks) || got.latencyBuckets != 9 {
		t.Errorf("latency count %v with %d buckets, want %d with 9", got.latencyCount, got.latencyBuckets, checks)
	}
}

func newTestDepHealth(t *testing.T, rawURL string, rootCAs *x509.CertPool, timeout time.Duration) (*depHealth, *metricsRegistry) {
	t.Helper()
	reg := newMetricsRegistry()
	d, err := newDepHealth(reg, depHealthOptions{
		Name: "storage-element", Group: "artstore", Dependency: "admin-jwks",
		URL: rawURL, Critical: true, Interval: time.Minute, Timeout: timeout, RootCAs: rootCAs,
	})
	if err != nil {
		t.Fatalf("newDepHealth: %v", err)
	}
	return d, reg
}

func statusServer(t *testing.T, code int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"keys":[]}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// quietTLSServer is an httptest TLS server whose handshake errors (expected
// when the client rejects the certificate) are not logged.
func quietTLSServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/jwks"
}

func TestDepHealthClassification(t *testing.T) {
	okHandler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	cases := []struct {
		name   string
		setup  func(t *testing.T) (rawURL string, rootCAs *x509.CertPool, timeout time.Duration)
		status string
		detail string
	}{
		{"200", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return statusServer(t, 200).URL + "/jwks", nil, 0
		}, "ok", "ok"},
		{"204", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return statusServer(t, 204).URL, nil, 0
		}, "ok", "ok"},
		{"401", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return statusServer(t, 401).URL, nil, 0
		}, "auth_error", "auth_error"},
		{"403", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return statusServer(t, 403).URL, nil, 0
		}, "auth_error", "auth_error"},
		{"404", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return statusServer(t, 404).URL, nil, 0
		}, "unhealthy", "http_404"},
		{"503", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return statusServer(t, 503).URL, nil, 0
		}, "unhealthy", "http_503"},
		{"redirect to 200", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			target := statusServer(t, 200)
			srv := httptest.NewServer(http.RedirectHandler(target.URL+"/final", http.StatusFound))
			t.Cleanup(srv.Close)
			return srv.URL, nil, 0
		}, "ok", "ok"},
		{"redirect loop", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			srv := httptest.NewServer(http.RedirectHandler("/again", http.StatusFound))
			t.Cleanup(srv.Close)
			return srv.URL, nil, 0
		}, "error", "error"},
		{"hang", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) }) // runs before srv.Close
			return srv.URL, nil, 200 * time.Millisecond
		}, "timeout", "timeout"},
		{"refused", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return closedPortURL(t), nil, 0
		}, "connection_error", "connection_refused"},
		{"dns failure", func(*testing.T) (string, *x509.CertPool, time.Duration) {
			// .invalid never resolves (RFC 6761); a generous timeout keeps a
			// slow resolver from turning this into "timeout".
			return "https://se-dephealth-probe.invalid/jwks", nil, 30 * time.Second
		}, "dns_error", "dns_error"},
		{"untrusted certificate", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return quietTLSServer(t, okHandler).URL, x509.NewCertPool(), 0
		}, "tls_error", "tls_error"},
		{"untrusted certificate, system roots", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return quietTLSServer(t, okHandler).URL, nil, 0
		}, "tls_error", "tls_error"},
		{"trusted certificate", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			srv := quietTLSServer(t, okHandler)
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			return srv.URL + "/.well-known/jwks.json", pool, 0
		}, "ok", "ok"},
		{"https to plain http", func(t *testing.T) (string, *x509.CertPool, time.Duration) {
			return "https" + strings.TrimPrefix(statusServer(t, 200).URL, "http"), nil, 0
		}, "error", "error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rawURL, pool, timeout := c.setup(t)
			d, reg := newTestDepHealth(t, rawURL, pool, timeout)
			d.CheckNow(context.Background())
			assertDepResult(t, reg, d, c.status, c.detail, 1)
		})
	}
}

func TestDepHealthNothingBeforeFirstCheck(t *testing.T) {
	srv := statusServer(t, 200)
	d, reg := newTestDepHealth(t, srv.URL, nil, 0)
	if text, _ := render(t, reg); text != "" {
		t.Fatalf("exported before the first check:\n%s", text)
	}
	if _, checked, _ := d.State(); checked {
		t.Fatal("State reports a check before any ran")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d.CheckNow(ctx) // shutdown: not a result
	if text, _ := render(t, reg); text != "" {
		t.Fatalf("a check with a cancelled context was published:\n%s", text)
	}
	d.CheckNow(context.Background())
	assertDepResult(t, reg, d, "ok", "ok", 1)
}

func TestDepHealthCancelledDuringCheckIsNotPublished(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	d, reg := newTestDepHealth(t, srv.URL, nil, 0)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	d.CheckNow(ctx)
	if text, _ := render(t, reg); text != "" {
		t.Fatalf("an interrupted check was published:\n%s", text)
	}
}

func TestDepHealthDetailReplaced(t *testing.T) {
	var code atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	d, reg := newTestDepHealth(t, srv.URL, nil, 0)
	steps := []struct {
		code           int
		status, detail string
	}{
		{200, "ok", "ok"},
		{503, "unhealthy", "http_503"},
		{503, "unhealthy", "http_503"},
		{404, "unhealthy", "http_404"},
		{401, "auth_error", "auth_error"},
		{200, "ok", "ok"},
	}
	for i, s := range steps {
		code.Store(int32(s.code))
		d.CheckNow(context.Background())
		t.Run(fmt.Sprintf("step %d (%d)", i, s.code), func(t *testing.T) {
			assertDepResult(t, reg, d, s.status, s.detail, i+1)
		})
	}
}

func TestDepHealthRequestShape(t *testing.T) {
	type seen struct {
		method, uri, userAgent string
		closeConn              bool
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.RequestURI, r.UserAgent(), r.Close}
		w.WriteHeader(200)
		_, _ = w.Write(make([]byte, 1<<20)) // a large body is not read
	}))
	t.Cleanup(srv.Close)
	d, reg := newTestDepHealth(t, srv.URL+"/keys/jwks.json?tenant=a", nil, 0)
	d.CheckNow(context.Background())
	s := <-got
	want := seen{"GET", "/keys/jwks.json?tenant=a", "storage-element-dephealth", true}
	if s != want {
		t.Fatalf("server saw %+v, want %+v", s, want)
	}
	assertDepResult(t, reg, d, "ok", "ok", 1)
}

func TestDepHealthRun(t *testing.T) {
	requests := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case requests <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	reg := newMetricsRegistry()
	d, err := newDepHealth(reg, depHealthOptions{
		Name: "se", Group: "g", Dependency: "d", URL: srv.URL, Interval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	for range 3 {
		<-requests
	}
	cancel()
	<-done
	if healthy, checked, detail := d.State(); healthy || !checked || detail != "auth_error" {
		t.Fatalf("State() = %v %v %q", healthy, checked, detail)
	}
	if got := scrapeDepSeries(t, reg); got.latencyCount < 2 {
		t.Fatalf("latency count %v after at least 3 requests", got.latencyCount)
	}
}

// depLabels renders the base labels alphabetically, as client_golang does;
// detail and status are added (in their alphabetical places) when not empty.
func depLabels(host, port, detail, status string) string {
	pairs := []string{`critical="yes"`, `dependency="admin-jwks"`}
	if detail != "" {
		pairs = append(pairs, fmt.Sprintf(`detail=%q`, detail))
	}
	pairs = append(pairs, `group="artstore"`, fmt.Sprintf(`host=%q`, host), `name="storage-element"`, fmt.Sprintf(`port=%q`, port))
	if status != "" {
		pairs = append(pairs, fmt.Sprintf(`status=%q`, status))
	}
	return strings.Join(append(pairs, `type="http"`), ",")
}

// expectedDepExposition builds the full exposition of one endpoint the way
// TOPOLOGYMETRICS.md §5 shows it (unshortened). latency lines use BASE for
// the base labels; nil leaves the latency family out.
func expectedDepExposition(host, port, status, detail string, latency []string) string {
	var b strings.Builder
	health := "0"
	if status == "ok" {
		health = "1"
	}
	base := depLabels(host, port, "", "")
	b.WriteString("# HELP app_dependency_health Health status of a dependency (1 = healthy, 0 = unhealthy)\n")
	b.WriteString("# TYPE app_dependency_health gauge\n")
	fmt.Fprintf(&b, "app_dependency_health{%s} %s\n", base, health)
	if latency != nil {
		b.WriteString("# HELP app_dependency_latency_seconds Latency of dependency health check in seconds\n")
		b.WriteString("# TYPE app_dependency_latency_seconds histogram\n")
		for _, l := range latency {
			b.WriteString(strings.ReplaceAll(l, "BASE", base) + "\n")
		}
	}
	b.WriteString("# HELP app_dependency_status Category of the last check result\n")
	b.WriteString("# TYPE app_dependency_status gauge\n")
	for _, s := range []string{"auth_error", "connection_error", "dns_error", "error", "ok", "timeout", "tls_error", "unhealthy"} {
		v := "0"
		if s == status {
			v = "1"
		}
		fmt.Fprintf(&b, "app_dependency_status{%s} %s\n", depLabels(host, port, "", s), v)
	}
	b.WriteString("# HELP app_dependency_status_detail Detailed reason of the last check result\n")
	b.WriteString("# TYPE app_dependency_status_detail gauge\n")
	fmt.Fprintf(&b, "app_dependency_status_detail{%s} 1\n", depLabels(host, port, detail, ""))
	return b.String()
}

// TestDepHealthExpositionMatchesSDK compares every byte with the SDK output
// of TOPOLOGYMETRICS.md §5 (its shortened rows filled in): one healthy
// 12.3 ms check of https://admin.example:8443/jwks.
func TestDepHealthExpositionMatchesSDK(t *testing.T) {
	d, reg := newTestDepHealth(t, "https://admin.example:8443/jwks", nil, 0)
	d.publish("ok", "ok", 0.0123)
	latency := []string{
		`app_dependency_latency_seconds_bucket{BASE,le="0.001"} 0`,
		`app_dependency_latency_seconds_bucket{BASE,le="0.005"} 0`,
		`app_dependency_latency_seconds_bucket{BASE,le="0.01"} 0`,
		`app_dependency_latency_seconds_bucket{BASE,le="0.05"} 1`,
		`app_dependency_latency_seconds_bucket{BASE,le="0.1"} 1`,
		`app_dependency_latency_seconds_bucket{BASE,le="0.5"} 1`,
		`app_dependency_latency_seconds_bucket{BASE,le="1"} 1`,
		`app_dependency_latency_seconds_bucket{BASE,le="5"} 1`,
		`app_dependency_latency_seconds_bucket{BASE,le="+Inf"} 1`,
		`app_dependency_latency_seconds_sum{BASE} 0.0123`,
		`app_dependency_latency_seconds_count{BASE} 1`,
	}
	got, _ := render(t, reg)
	want := expectedDepExposition("admin.example", "8443", "ok", "ok", latency)
	if got != want {
		t.Fatalf("exposition differs from the SDK's\n--- got\n%s--- want\n%s", got, want)
	}
	// Two lines copied verbatim from TOPOLOGYMETRICS.md §5, as a check on
	// the expected-text builder itself.
	for _, line := range []string{
		`app_dependency_health{critical="yes",dependency="admin-jwks",group="artstore",host="admin.example",name="storage-element",port="8443",type="http"} 1`,
		`app_dependency_status{critical="yes",dependency="admin-jwks",group="artstore",host="admin.example",name="storage-element",port="8443",status="auth_error",type="http"} 0`,
		`app_dependency_status_detail{critical="yes",dependency="admin-jwks",detail="ok",group="artstore",host="admin.example",name="storage-element",port="8443",type="http"} 1`,
		`app_dependency_latency_seconds_bucket{critical="yes",dependency="admin-jwks",group="artstore",host="admin.example",name="storage-element",port="8443",type="http",le="0.05"} 1`,
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing line from TOPOLOGYMETRICS.md §5:\n%s", line)
		}
	}
}

// TestDepHealthExactLinesFromProbe probes a real loopback server returning
// 503 and compares the health, status and detail lines byte for byte.
func TestDepHealthExactLinesFromProbe(t *testing.T) {
	srv := statusServer(t, 503)
	d, reg := newTestDepHealth(t, srv.URL+"/jwks", nil, 0)
	d.CheckNow(context.Background())
	got, _ := render(t, reg)
	var kept []string
	for _, line := range strings.SplitAfter(got, "\n") {
		if !strings.Contains(line, "app_dependency_latency_seconds") {
			kept = append(kept, line)
		}
	}
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	want := expectedDepExposition("127.0.0.1", fmt.Sprint(port), "unhealthy", "http_503", nil)
	if strings.Join(kept, "") != want {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(kept, ""), want)
	}
}

func TestDepHealthHostPortLabels(t *testing.T) {
	cases := []struct{ url, host, port string }{
		{"https://admin.example:8443/jwks", "admin.example", "8443"},
		{"https://admin.example/jwks", "admin.example", "443"},
		{"http://admin.example/jwks", "admin.example", "80"},
		{"https://LOCALHOST/x", "LOCALHOST", "443"},
		{"http://[::1]/x", "::1", "80"},
		{"https://[::1]:9443/x", "::1", "9443"},
		{"https://user:secret@idp.example:444/p?q=1#f", "idp.example", "444"},
	}
	for _, c := range cases {
		host, port, err := depHealthHostPort(c.url)
		if err != nil || host != c.host || port != c.port {
			t.Errorf("%s: got %q %q %v, want %q %q", c.url, host, port, err, c.host, c.port)
		}
	}
	for _, bad := range []string{
		"", "ftp://x/", "https:///nohost", "https://x:0/", "https://x:65536/", "https://x:08443/",
		"https://x:port/", "admin.example:8443", "://x",
	} {
		if _, _, err := depHealthHostPort(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestDepHealthOptions(t *testing.T) {
	valid := depHealthOptions{Name: "storage-element", Group: "artstore", Dependency: "admin-jwks", URL: "https://a.example/jwks"}
	cases := map[string]func(o *depHealthOptions){
		"uppercase name":    func(o *depHealthOptions) { o.Name = "Storage" },
		"empty group":       func(o *depHealthOptions) { o.Group = "" },
		"leading digit":     func(o *depHealthOptions) { o.Dependency = "1jwks" },
		"underscore":        func(o *depHealthOptions) { o.Dependency = "admin_jwks" },
		"64 characters":     func(o *depHealthOptions) { o.Name = "a" + strings.Repeat("b", 63) },
		"bad url":           func(o *depHealthOptions) { o.URL = "jwks.example" },
		"negative interval": func(o *depHealthOptions) { o.Interval = -time.Second },
		"negative timeout":  func(o *depHealthOptions) { o.Timeout = -time.Second },
	}
	for name, mutate := range cases {
		o := valid
		mutate(&o)
		if _, err := newDepHealth(newMetricsRegistry(), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o := valid
	o.Name = "a" + strings.Repeat("-", 62) // 63 characters, hyphens allowed
	d, err := newDepHealth(newMetricsRegistry(), o)
	if err != nil {
		t.Fatalf("63-character name rejected: %v", err)
	}
	if d.interval != 15*time.Second || d.timeout != 5*time.Second || d.base[6] != "no" {
		t.Errorf("defaults: interval %v, timeout %v, critical %q", d.interval, d.timeout, d.base[6])
	}
	o = valid
	o.Interval, o.Timeout = 2*time.Second, 10*time.Second
	if d, err = newDepHealth(newMetricsRegistry(), o); err != nil || d.timeout != 2*time.Second {
		t.Errorf("timeout not capped at interval: %v %v", d.timeout, err)
	}
}

func TestDepHealthSharesFamiliesPerRegistry(t *testing.T) {
	srv := statusServer(t, 200)
	reg := newMetricsRegistry()
	opts := depHealthOptions{Name: "se", Group: "g", Dependency: "jwks-a", URL: srv.URL}
	a, err := newDepHealth(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newDepHealth(reg, opts); err == nil {
		t.Fatal("a second prober with the same labels was accepted")
	}
	opts.Dependency = "jwks-b"
	b, err := newDepHealth(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	a.CheckNow(context.Background())
	b.CheckNow(context.Background())
	_, families := render(t, reg)
	status, _ := familyByName(families, "app_dependency_status")
	if len(status.samples) != 16 {
		t.Fatalf("got %d status series for two endpoints, want 16", len(status.samples))
	}
}

func TestClassifyDepHealthErrorMessages(t *testing.T) {
	// Errors that only carry a message are classified by its wording.
	for msg, want := range map[string]string{
		"remote error: tls: handshake failure":            "tls_error",
		"x509: certificate has expired":                   "tls_error",
		"bad certificate":                                 "tls_error",
		"read: connection reset by peer":                  "error",
		"http: server gave HTTP response to HTTPS client": "error",
	} {
		if status, _ := classifyDepHealthError(fmt.Errorf("get: %s", msg)); status != want {
			t.Errorf("%q: got %s, want %s", msg, status, want)
		}
	}
}
