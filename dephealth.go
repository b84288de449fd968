package main

// dephealth.go: a probe of one HTTP dependency (the JWKS endpoint) that
// exports the same series as the topologymetrics Go SDK
// (github.com/BigKAA/topologymetrics/sdk-go/dephealth v0.8.x), written from
// /work/shared/TOPOLOGYMETRICS.md without importing the SDK.
//
// Exported families (HELP texts are fixed by the SDK and must not change):
//
//	app_dependency_health{base}                  gauge, 1 healthy / 0 not
//	app_dependency_latency_seconds{base}         histogram, buckets 0.001..5
//	app_dependency_status{base,status}           gauge, 8 series, exactly one 1
//	app_dependency_status_detail{base,detail}    gauge, 1 series, always 1
//
// base = name, group, dependency, type="http", host, port, critical. The
// registry prints labels alphabetically, which makes the lines byte-identical
// to the SDK's client_golang output.
//
// Lifecycle invariants:
//   - before the first check completes nothing is exported for the endpoint;
//   - every completed check observes its latency (failures included), sets
//     health, sets all 8 status series (exactly one is 1) and, when the detail
//     changed, replaces the detail series; these changes are published as one
//     step, so no scrape sees half of a check;
//   - health == 1 exactly when status is "ok" (SDK thresholds are fixed 1/1).
//
// Deliberate deviations from the SDK, decided by the lead:
//   - the probe GETs the configured URL itself (path and query included); the
//     SDK would replace the path with /health;
//   - RootCAs (SE_JWKS_CA_CERT) are trusted; the SDK has no custom-CA option.
//     Verification is always on.
//   - a check interrupted because the caller's context ended (shutdown) is
//     not published, so stopping never flips the series to "error".
//
// As in the SDK: redirects are followed (at most 10), the body is not read
// beyond a small discard, and each check uses a fresh transport without
// keep-alive or environment proxy.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	depHealthUserAgent       = "storage-element-dephealth"
	depHealthDefaultInterval = 15 * time.Second
	depHealthDefaultTimeout  = 5 * time.Second
	// depHealthDiscardLimit bounds how much of a response body is drained
	// before closing it; the body is never interpreted.
	depHealthDiscardLimit = 4 << 10
	depHealthMaxRedirects = 10
)

// depHealthStatuses are the 8 values of the status label, in output order.
var depHealthStatuses = []string{
	"auth_error", "connection_error", "dns_error", "error", "ok", "timeout", "tls_error", "unhealthy",
}

// depHealthBuckets are the SDK's latency buckets (+Inf is added).
var depHealthBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5}

// depHealthBaseLabels are the base label names in the spec's order (the
// declared order of With's arguments; output is alphabetical anyway).
var depHealthBaseLabels = []string{"name", "group", "dependency", "type", "host", "port", "critical"}

type depHealthOptions struct {
	Name, Group, Dependency string // validated ^[a-z][a-z0-9-]*$, 1..63
	URL                     string
	Critical                bool
	Interval                time.Duration  // SE_DEPHEALTH_CHECK_INTERVAL, default 15s
	Timeout                 time.Duration  // default 5s (capped at Interval if larger)
	RootCAs                 *x509.CertPool // nil = system roots
}

// depHealthFamilies are the 4 families, registered once per registry and
// shared by every prober on it.
type depHealthFamilies struct {
	health  *gaugeVec
	latency *histogramVec
	status  *gaugeVec
	detail  *gaugeVec

	mu        sync.Mutex
	endpoints map[string]bool // base label tuples in use
}

func depHealthFamiliesOf(reg *metricsRegistry) *depHealthFamilies {
	return reg.sharedValue("dephealth", func() any {
		withStatus := append(append([]string(nil), depHealthBaseLabels...), "status")
		withDetail := append(append([]string(nil), depHealthBaseLabels...), "detail")
		return &depHealthFamilies{
			health: reg.GaugeVec("app_dependency_health",
				"Health status of a dependency (1 = healthy, 0 = unhealthy)", depHealthBaseLabels...),
			latency: reg.HistogramVec("app_dependency_latency_seconds",
				"Latency of dependency health check in seconds", depHealthBuckets, depHealthBaseLabels...),
			status: reg.GaugeVec("app_dependency_status",
				"Category of the last check result", withStatus...),
			detail: reg.GaugeVec("app_dependency_status_detail",
				"Detailed reason of the last check result", withDetail...),
			endpoints: make(map[string]bool),
		}
	}).(*depHealthFamilies)
}

// depHealth probes one HTTP endpoint and keeps its series up to date.
type depHealth struct {
	reg      *metricsRegistry
	families *depHealthFamilies
	url      string
	base     []string // base label values, depHealthBaseLabels order
	interval time.Duration
	timeout  time.Duration
	rootCAs  *x509.CertPool

	checkMu sync.Mutex // serialises checks so publications stay ordered

	stateMu sync.Mutex
	checked bool
	healthy bool
	detail  string
}

// newDepHealth validates opts and prepares the prober. It exports nothing
// until the first check completes.
func newDepHealth(reg *metricsRegistry, opts depHealthOptions) (*depHealth, error) {
	for _, f := range []struct{ what, value string }{
		{"name", opts.Name}, {"group", opts.Group}, {"dependency", opts.Dependency},
	} {
		if !validDepHealthName(f.value) {
			return nil, fmt.Errorf("dephealth: %s %q must match ^[a-z][a-z0-9-]*$ and be 1-63 characters", f.what, f.value)
		}
	}
	host, port, err := depHealthHostPort(opts.URL)
	if err != nil {
		return nil, err
	}
	interval, timeout, err := depHealthSchedule(opts.Interval, opts.Timeout)
	if err != nil {
		return nil, err
	}
	critical := "no"
	if opts.Critical {
		critical = "yes"
	}
	d := &depHealth{
		reg:      reg,
		families: depHealthFamiliesOf(reg),
		url:      opts.URL,
		base:     []string{opts.Name, opts.Group, opts.Dependency, "http", host, port, critical},
		interval: interval,
		timeout:  timeout,
		rootCAs:  opts.RootCAs,
	}
	if err := d.families.claim(d.base); err != nil {
		return nil, err
	}
	return d, nil
}

// claim reserves a base label tuple: two probers with the same labels would
// overwrite each other's series.
func (f *depHealthFamilies) claim(base []string) error {
	key := strings.Join(base, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.endpoints[key] {
		return fmt.Errorf("dephealth: endpoint %v is already probed on this registry", base)
	}
	f.endpoints[key] = true
	return nil
}

// validDepHealthName reports whether s matches ^[a-z][a-z0-9-]*$ with length
// 1..63 (trailing or double hyphens allowed, as in the SDK).
func validDepHealthName(s string) bool {
	if len(s) < 1 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '-' {
			return false
		}
	}
	return true
}

// depHealthHostPort derives the host and port labels: the host as written
// (case kept, IPv6 without brackets), the explicit port or the scheme default.
func depHealthHostPort(rawURL string) (host, port string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", fmt.Errorf("dephealth: parse url: %w", err)
	}
	defaultPort := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	if defaultPort == "" {
		return "", "", fmt.Errorf("dephealth: url %q: scheme must be http or https", rawURL)
	}
	host = u.Hostname()
	if host == "" {
		return "", "", fmt.Errorf("dephealth: url %q has no host", rawURL)
	}
	port = u.Port()
	if port == "" {
		return host, defaultPort, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", "", fmt.Errorf("dephealth: url %q: port must be 1-65535", rawURL)
	}
	return host, port, nil
}

// depHealthSchedule applies the defaults; the timeout never exceeds the
// interval so checks cannot pile up.
func depHealthSchedule(interval, timeout time.Duration) (time.Duration, time.Duration, error) {
	if interval < 0 || timeout < 0 {
		return 0, 0, fmt.Errorf("dephealth: interval (%v) and timeout (%v) must not be negative", interval, timeout)
	}
	if interval == 0 {
		interval = depHealthDefaultInterval
	}
	if timeout == 0 {
		timeout = depHealthDefaultTimeout
	}
	return interval, min(timeout, interval), nil
}

// Run checks immediately, then every Interval until ctx is done. The ticker
// starts after the first check, as in the SDK.
func (d *depHealth) Run(ctx context.Context) {
	d.CheckNow(ctx)
	ticker := time.NewTicker(d.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			d.CheckNow(ctx)
		}
	}
}

// CheckNow runs one check and publishes its result, unless ctx ended during
// the check (shutdown is not a dependency failure).
func (d *depHealth) CheckNow(ctx context.Context) {
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	if ctx.Err() != nil {
		return
	}
	start := time.Now()
	status, detail := d.probe(ctx)
	elapsed := time.Since(start).Seconds()
	if ctx.Err() != nil {
		return
	}
	d.publish(status, detail, elapsed)
}

// State returns the result of the last completed check; checked is false
// before the first one.
func (d *depHealth) State() (healthy bool, checked bool, detail string) {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	return d.healthy, d.checked, d.detail
}

// probe performs one GET and classifies the outcome as (status, detail).
func (d *depHealth) probe(ctx context.Context) (status, detail string) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	transport := &http.Transport{
		Proxy:             nil, // the SDK ignores proxy environment variables
		DialContext:       (&net.Dialer{}).DialContext,
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: d.rootCAs, MinVersion: tls.VersionTLS12},
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, CheckRedirect: limitRedirects}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return "error", "error"
	}
	req.Header.Set("User-Agent", depHealthUserAgent)
	resp, err := client.Do(req)
	if err != nil {
		return classifyDepHealthError(err)
	}
	_, _ = io.CopyN(io.Discard, resp.Body, depHealthDiscardLimit)
	_ = resp.Body.Close()
	return classifyDepHealthStatus(resp.StatusCode)
}

// limitRedirects follows at most depHealthMaxRedirects redirects.
func limitRedirects(_ *http.Request, via []*http.Request) error {
	if len(via) >= depHealthMaxRedirects {
		return fmt.Errorf("stopped after %d redirects", depHealthMaxRedirects)
	}
	return nil
}

// classifyDepHealthStatus maps the final HTTP status code.
func classifyDepHealthStatus(code int) (status, detail string) {
	switch {
	case code >= 200 && code <= 299:
		return "ok", "ok"
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return "auth_error", "auth_error"
	default:
		return "unhealthy", "http_" + strconv.Itoa(code)
	}
}

// classifyDepHealthError follows the SDK's chain: deadline, DNS, refused or
// network timeout, TLS/certificate, then anything else.
func classifyDepHealthError(err error) (status, detail string) {
	var dnsErr *net.DNSError
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", "timeout"
	case errors.As(err, &dnsErr):
		return "dns_error", "dns_error"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_error", "connection_refused"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout", "timeout"
	case errors.As(err, &certErr) || looksLikeTLSError(err.Error()):
		return "tls_error", "tls_error"
	default:
		return "error", "error"
	}
}

func looksLikeTLSError(msg string) bool {
	return strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate")
}

// publish updates the series and the state as one step.
func (d *depHealth) publish(status, detail string, latencySeconds float64) {
	healthy := status == "ok"
	d.stateMu.Lock()
	previous, wasChecked := d.detail, d.checked
	d.checked, d.healthy, d.detail = true, healthy, detail
	d.stateMu.Unlock()

	f := d.families
	d.reg.updateAtomically(func() {
		f.latency.With(d.base...).Observe(latencySeconds)
		f.health.With(d.base...).Set(boolToFloat(healthy))
		for _, s := range depHealthStatuses {
			f.status.With(d.withLabel(s)...).Set(boolToFloat(s == status))
		}
		if wasChecked && previous == detail {
			return
		}
		if wasChecked {
			f.detail.Delete(d.withLabel(previous)...)
		}
		f.detail.With(d.withLabel(detail)...).Set(1)
	})
}

// withLabel returns the base label values followed by extra.
func (d *depHealth) withLabel(extra string) []string {
	values := make([]string, 0, len(d.base)+1)
	values = append(values, d.base...)
	return append(values, extra)
}

func boolToFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
