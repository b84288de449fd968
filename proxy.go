// proxy.go — a follower forwards writes (upload, PATCH, DELETE, mode transition,
// reconcile) to the leader (CONTRACT §9).
//
// Invariants:
//   - Bodies stream both ways (httputil.ReverseProxy): a 1 GiB upload through a
//     follower is never buffered. Authorization and X-Request-ID pass through.
//   - The leader's certificate is verified against the system roots plus
//     SE_PEER_CA_CERT; only SE_PEER_TLS_INSECURE_SKIP_VERIFY=true turns that off.
//   - No leader known → 503 LEADER_UNKNOWN; a forward that fails before the leader
//     answered → 502 PROXY_ERROR. Dialling and the TLS handshake are bounded, and
//     short requests have a deadline, so a dead leader never hangs a client.
//   - A request that was already forwarded once is never forwarded again (no loops
//     while leadership moves).
//   - After a forwarded write succeeds, the follower re-reads what it changed (the
//     file's sidecar, or mode.json), so read-after-write through it works.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"
)

const (
	forwardedHeader     = "X-Se-Forwarded-By"
	shortForwardTimeout = 60 * time.Second
)

type leaderAddrKey struct{}

type forwarder struct {
	election *election
	store    *store
	storeID  string
	log      *slog.Logger
	proxy    *httputil.ReverseProxy
}

func newForwarder(el *election, st *store, storageID string, rootCAs *x509.CertPool, insecure bool, log *slog.Logger) *forwarder {
	f := &forwarder{election: el, store: st, storeID: storageID, log: log}
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: rootCAs, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		Transport:      transport,
		ModifyResponse: f.afterLeaderAnswered,
		ErrorHandler:   f.proxyError,
	}
	return f
}

func (f *forwarder) rewrite(pr *httputil.ProxyRequest) {
	addr, _ := pr.In.Context().Value(leaderAddrKey{}).(string)
	pr.Out.URL.Scheme = "https"
	pr.Out.URL.Host = addr
	pr.Out.Host = addr
	pr.Out.Header.Set(forwardedHeader, f.storeID)
	pr.SetXForwarded()
}

// forward sends one write to the leader and relays its answer.
func (f *forwarder) forward(w http.ResponseWriter, r *http.Request) {
	addr, ok := f.election.leaderAddress()
	if !ok || r.Header.Get(forwardedHeader) != "" {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "LEADER_UNKNOWN", "no leader is known right now; retry shortly")
		return
	}
	ctx := context.WithValue(r.Context(), leaderAddrKey{}, addr)
	if !longForward(r) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, shortForwardTimeout)
		defer cancel()
	}
	f.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// longForward: uploads stream for as long as bytes move, and a reconciliation of a big
// store takes as long as it takes; both are bounded by the body idle deadlines instead.
func longForward(r *http.Request) bool {
	return strings.HasSuffix(r.URL.Path, "/upload") || strings.HasSuffix(r.URL.Path, "/reconcile")
}

func (f *forwarder) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	f.log.Warn("forward to leader failed", "request_id", requestID(r.Context()), "route", r.Pattern, "err", err)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away; nobody to answer
	}
	writeError(w, http.StatusBadGateway, "PROXY_ERROR", "the leader could not be reached")
}

// afterLeaderAnswered refreshes this follower's view of what a successful write changed.
// The leader answers only after the change is durable, so the disk already shows it.
func (f *forwarder) afterLeaderAnswered(resp *http.Response) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil
	}
	path := resp.Request.URL.Path
	switch {
	case strings.HasSuffix(path, "/mode/transition"):
		if err := f.store.mode.reload(); err != nil {
			f.log.Warn("cannot re-read mode.json after a forwarded transition", "err", err)
		}
	case strings.HasSuffix(path, "/upload"):
		f.refreshID(strings.TrimPrefix(resp.Header.Get("Location"), "/api/v1/files/"))
	case strings.HasPrefix(path, "/api/v1/files/"):
		f.refreshID(strings.TrimPrefix(path, "/api/v1/files/"))
	}
	return nil
}

func (f *forwarder) refreshID(s string) {
	if id, err := parseFileID(s); err == nil {
		f.store.refreshFromDisk(id)
	}
}
