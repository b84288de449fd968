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
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
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
	dialer := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &watchedConn{Conn: c}, nil
		},
		TLSClientConfig:       &tls.Config{RootCAs: rootCAs, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		// HTTP/1.1: one forward per connection, so a dead connection names exactly the
		// forward to interrupt (see watchedConn).
		ForceAttemptHTTP2: false,
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
	out := r.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		body := newForwardBody(r.Body)
		defer body.finish(http.NewResponseController(w))
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: body.watchConn})
		out = r.WithContext(ctx)
		out.Body = body
	}
	f.proxy.ServeHTTP(w, out)
}

// A forwarded upload whose client pauses mid-body would outlive a dead leader: the
// transport's body writer sits in a read of the client's connection and the round trip
// waits for it. So the client's body reaches the transport through a pipe fed by a pump
// goroutine; watchedConn notices the leader's connection failing and closes the pipe,
// which ends the round trip at once. The client then gets its 502 (flushed), and only
// after that is the pump's pending read on the client connection cut short, so the
// handler never returns while the pump still reads the request body.
type watchedConn struct {
	net.Conn
	mu     sync.Mutex
	failed bool
	onFail func()
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.fail()
	}
	return n, err
}

func (c *watchedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.fail()
	}
	return n, err
}

func (c *watchedConn) fail() {
	c.mu.Lock()
	c.failed = true
	fn := c.onFail
	c.onFail = nil
	c.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// watch makes fn run when the connection fails (at once if it already has); the
// returned function stops watching.
func (c *watchedConn) watch(fn func()) func() {
	c.mu.Lock()
	if c.failed {
		c.mu.Unlock()
		fn()
		return func() {}
	}
	c.onFail = fn
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.onFail = nil
		c.mu.Unlock()
	}
}

var errForwardInterrupted = errors.New("leader connection failed while the request body was being forwarded")

// forwardBody is the client's request body on its way to the leader.
type forwardBody struct {
	src     io.ReadCloser
	pr      *io.PipeReader
	pumped  chan struct{} // closed when the pump stopped reading src
	inRead  atomic.Bool   // the pump is inside a read of the client's connection
	mu      sync.Mutex
	unwatch func()
}

func newForwardBody(src io.ReadCloser) *forwardBody {
	pr, pw := io.Pipe()
	b := &forwardBody{src: src, pr: pr, pumped: make(chan struct{})}
	go b.pump(pw)
	return b
}

// pump copies the client's body into the pipe until EOF, an error, or a closed pipe.
func (b *forwardBody) pump(pw *io.PipeWriter) {
	defer close(b.pumped)
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := *bufp
	for {
		b.inRead.Store(true)
		n, err := b.src.Read(buf)
		b.inRead.Store(false)
		if n > 0 {
			if _, werr := pw.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			pw.Close()
			return
		}
		if err != nil {
			pw.CloseWithError(err)
			return
		}
	}
}

func (b *forwardBody) Read(p []byte) (int, error) { return b.pr.Read(p) }

// Close is the transport's: it stops wanting the body, so the pump stops at its next write.
func (b *forwardBody) Close() error { return b.pr.Close() }

// watchConn is the httptrace hook: it ties this forward to the leader connection.
func (b *forwardBody) watchConn(info httptrace.GotConnInfo) {
	tc, ok := info.Conn.(*tls.Conn)
	if !ok {
		return
	}
	wc, ok := tc.NetConn().(*watchedConn)
	if !ok {
		return
	}
	unwatch := wc.watch(func() { b.pr.CloseWithError(errForwardInterrupted) })
	b.mu.Lock()
	b.unwatch = unwatch
	b.mu.Unlock()
}

// finish runs once the forward is over. The answer cannot even be sent while the pump
// sits in a read of the client's body (net/http's response writer takes the body's lock
// to decide about the connection), so a pump stuck there (a paused client whose forward
// failed) is cut short with a read deadline; a pump between reads stops by itself once
// the pipe is closed. Only the first case touches the client connection, and it leaves
// the body unread, so the server closes that connection after the answer.
func (b *forwardBody) finish(rc *http.ResponseController) {
	b.mu.Lock()
	if b.unwatch != nil {
		b.unwatch()
	}
	b.mu.Unlock()
	b.pr.CloseWithError(errForwardInterrupted)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.pumped:
			return
		case <-t.C:
			if b.inRead.Load() {
				rc.SetReadDeadline(time.Now())
			}
		}
	}
}

// longForward: uploads stream for as long as bytes move, and a reconciliation of a big
// store takes as long as it takes; both are bounded by the body idle deadlines instead.
func longForward(r *http.Request) bool {
	return strings.HasSuffix(r.URL.Path, "/upload") || strings.HasSuffix(r.URL.Path, "/reconcile")
}

func (f *forwarder) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	f.log.Warn("forward to leader failed", "request_id", requestID(r.Context()), "route", r.Pattern, "err", err)
	// The leader may have changed: read .leader.info now rather than at the next
	// election tick, so the next forward goes to the new one.
	f.election.readLeaderInfo()
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
