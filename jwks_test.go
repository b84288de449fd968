package main

// Tests for jwks.go against a real TLS JWKS server (httptest.NewTLSServer on 127.0.0.1) whose
// answers the test changes while the client runs. Fetches are counted on the server, so the
// rate limit and the single flight are asserted as counts, and the MinRefreshGap clock is a
// fake one the test advances. Waiting for the background loop polls for an outcome with a
// generous deadline; nothing asserts how long anything took.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksTestServer serves a JWKS document (or a failure) that the test can swap at any time.
type jwksTestServer struct {
	srv     *httptest.Server
	fetches atomic.Int64 // requests for the document path

	mu      sync.Mutex
	status  int
	body    []byte
	chunked bool          // stream the body without Content-Length
	gate    chan struct{} // when set, each fetch waits for it to be closed
}

func newJWKSTestServer(t testing.TB, keys map[string]*rsa.PublicKey) *jwksTestServer {
	t.Helper()
	s := &jwksTestServer{}
	s.setKeys(t, keys)
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks.json", s.serve)
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/jwks.json", http.StatusFound)
	})
	mux.HandleFunc("/to-plain-http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://jwks.example.invalid/jwks.json", http.StatusFound)
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the TLS rejections are expected
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksTestServer) serve(w http.ResponseWriter, _ *http.Request) {
	s.fetches.Add(1)
	s.mu.Lock()
	status, body, chunked, gate := s.status, s.body, s.chunked, s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if !chunked {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	}
	w.WriteHeader(status)
	for len(body) > 0 {
		n := min(len(body), 32<<10)
		w.Write(body[:n])
		if chunked {
			w.(http.Flusher).Flush()
		}
		body = body[n:]
	}
}

func (s *jwksTestServer) setKeys(t testing.TB, keys map[string]*rsa.PublicKey) {
	t.Helper()
	doc, err := jwksDocument(keys)
	if err != nil {
		t.Fatal(err)
	}
	s.setResponse(http.StatusOK, doc, false)
}

func (s *jwksTestServer) setResponse(status int, body []byte, chunked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body, s.chunked = status, body, chunked
}

// hold makes fetches wait until the returned release is called (at the latest, at cleanup).
func (s *jwksTestServer) hold(t testing.TB) (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate = gate
	s.mu.Unlock()
	release = sync.OnceFunc(func() {
		s.mu.Lock()
		s.gate = nil
		s.mu.Unlock()
		close(gate)
	})
	t.Cleanup(release)
	return release
}

func (s *jwksTestServer) url() string { return s.srv.URL + "/jwks.json" }

func (s *jwksTestServer) rootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())
	return pool
}

// client builds a jwksClient for this server through the production HTTP client (TLS
// verified against the server's certificate); opts fields left zero take the defaults.
func (s *jwksTestServer) client(opts jwksOptions) *jwksClient {
	if opts.URL == "" {
		opts.URL = s.url()
	}
	if opts.RootCAs == nil {
		opts.RootCAs = s.rootCAs()
	}
	return newJWKSClient(opts)
}

// jwksTestClock is the fake clock behind the MinRefreshGap rate limit.
type jwksTestClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *jwksTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *jwksTestClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// jwksEventually polls cond until it holds; it fails the test after a generous deadline.
func jwksEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jwksRun starts c.Run and stops it (and waits for it) at the end of the test.
func jwksRun(t *testing.T, c *jwksClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// jwksLogBuffer collects log output from the fetch goroutines.
type jwksLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *jwksLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *jwksLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func jwksTokenFor(t *testing.T, key *rsa.PrivateKey, kid string) string {
	t.Helper()
	token, err := signRS256(key, kid, jwtTestClaims(nil))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestJWKSKeyRotation(t *testing.T) {
	k := jwtTestKeys()
	server := newJWKSTestServer(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey})
	client := server.client(jwksOptions{RefreshInterval: time.Hour, MinRefreshGap: time.Nanosecond})
	jwksRun(t, client)
	jwksEventually(t, "initial key set", client.HasKeys)
	v := jwtTestVerifier(client)
	ctx := context.Background()

	if _, err := v.Verify(ctx, jwksTokenFor(t, k.a, "a")); err != nil {
		t.Fatalf("token of the started key: %v", err)
	}

	// A kid nobody published: exactly one refresh, then a reject.
	before := server.fetches.Load()
	_, err := v.Verify(ctx, jwksTokenFor(t, k.b, "b"))
	if !errors.Is(err, errInvalidToken) || !errors.Is(err, errJWKSUnknownKid) {
		t.Fatalf("unpublished kid: err = %v", err)
	}
	if got := server.fetches.Load() - before; got != 1 {
		t.Errorf("fetches for an unknown kid = %d, want 1", got)
	}

	// The issuer rotates in key b after the client started: its tokens verify.
	server.setKeys(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey, "b": &k.b.PublicKey})
	claims, err := v.Verify(ctx, jwksTokenFor(t, k.b, "b"))
	if err != nil {
		t.Fatalf("token of the rotated-in key: %v", err)
	}
	if claims.Subject != "user-1" {
		t.Errorf("Subject = %q", claims.Subject)
	}

	// The issuer retires key a; once a refresh has happened, its tokens are rejected.
	server.setKeys(t, map[string]*rsa.PublicKey{"b": &k.b.PublicKey})
	if _, err := client.PublicKey(ctx, "c-triggers-a-refresh"); !errors.Is(err, errJWKSUnknownKid) {
		t.Fatalf("refresh trigger: err = %v", err)
	}
	if _, err := v.Verify(ctx, jwksTokenFor(t, k.a, "a")); !errors.Is(err, errJWKSUnknownKid) {
		t.Fatalf("token of the retired key: err = %v", err)
	}
	if _, err := v.Verify(ctx, jwksTokenFor(t, k.b, "b")); err != nil {
		t.Fatalf("token of the remaining key: %v", err)
	}
}

func TestJWKSUnknownKidRateLimited(t *testing.T) {
	k := jwtTestKeys()
	server := newJWKSTestServer(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey})
	client := server.client(jwksOptions{MinRefreshGap: 10 * time.Second})
	clock := &jwksTestClock{now: jwtTestNow}
	client.now = clock.Now
	ctx := context.Background()

	// No Run: the first lookup loads the set.
	if _, err := client.PublicKey(ctx, "a"); err != nil {
		t.Fatalf("first lookup: %v", err)
	}
	if got := server.fetches.Load(); got != 1 {
		t.Fatalf("fetches after the first lookup = %d, want 1", got)
	}

	madeUp := make([]string, 32)
	for i := range madeUp {
		madeUp[i] = jwksTokenFor(t, k.b, fmt.Sprintf("made-up-%d", i))
	}
	burst := func() {
		t.Helper()
		v := jwtTestVerifier(client)
		var wg sync.WaitGroup
		var accepted atomic.Int64
		for _, token := range madeUp {
			wg.Go(func() {
				if _, err := v.Verify(ctx, token); err == nil {
					accepted.Add(1)
				}
			})
		}
		wg.Wait()
		if n := accepted.Load(); n != 0 {
			t.Fatalf("%d tokens with made-up kids accepted", n)
		}
	}

	burst() // within the gap of the first fetch
	if got := server.fetches.Load(); got != 1 {
		t.Errorf("fetches after a burst within the gap = %d, want 1", got)
	}
	clock.advance(11 * time.Second)
	burst() // the gap has passed: one fetch for the whole burst
	if got := server.fetches.Load(); got != 2 {
		t.Errorf("fetches after a burst past the gap = %d, want 2", got)
	}

	// A real new key is invisible until the gap passes again, then found.
	server.setKeys(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey, "b": &k.b.PublicKey})
	if _, err := client.PublicKey(ctx, "b"); !errors.Is(err, errJWKSUnknownKid) {
		t.Fatalf("new key within the gap: err = %v", err)
	}
	clock.advance(11 * time.Second)
	if _, err := client.PublicKey(ctx, "b"); err != nil {
		t.Fatalf("new key after the gap: %v", err)
	}
	if got := server.fetches.Load(); got != 3 {
		t.Errorf("fetches at the end = %d, want 3", got)
	}
}

// TestJWKSSingleFlight: lookups of a kid that arrive while a fetch runs wait for that fetch
// instead of failing at the rate limit, and start no fetch of their own.
func TestJWKSSingleFlight(t *testing.T) {
	k := jwtTestKeys()
	server := newJWKSTestServer(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey})
	client := server.client(jwksOptions{MinRefreshGap: 10 * time.Second})
	clock := &jwksTestClock{now: jwtTestNow}
	client.now = clock.Now
	if _, err := client.PublicKey(context.Background(), "a"); err != nil {
		t.Fatalf("first lookup: %v", err)
	}

	server.setKeys(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey, "b": &k.b.PublicKey})
	release := server.hold(t)
	clock.advance(11 * time.Second)
	results := make(chan error, 16)
	lookupB := func(ctx context.Context) {
		_, err := client.PublicKey(ctx, "b")
		results <- err
	}
	leaderCtx, leaderGivesUp := context.WithCancel(context.Background())
	go lookupB(leaderCtx) // starts the fetch, which the server holds
	jwksEventually(t, "the fetch to reach the server", func() bool { return server.fetches.Load() == 2 })
	// The caller that started the fetch goes away; the fetch must go on for the others.
	leaderGivesUp()
	if err := <-results; !errors.Is(err, context.Canceled) {
		t.Fatalf("lookup of the caller that gave up: err = %v", err)
	}

	// A caller that gives up while the fetch is held proves it was waiting for the fetch:
	// turned away by the rate limit it would get errJWKSUnknownKid without context.Canceled.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := client.PublicKey(cancelled, "b"); !errors.Is(err, context.Canceled) {
		t.Fatalf("lookup during the fetch: err = %v, want it to have waited", err)
	}
	for range 16 {
		go lookupB(context.Background())
	}
	release()
	for range 16 {
		if err := <-results; err != nil {
			t.Errorf("lookup of the rotated-in key: %v", err)
		}
	}
	if got := server.fetches.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2", got)
	}
}

func TestJWKSDownAtStartThenUp(t *testing.T) {
	k := jwtTestKeys()
	server := newJWKSTestServer(t, nil)
	server.setResponse(http.StatusServiceUnavailable, []byte("starting"), false)
	client := server.client(jwksOptions{RetryInterval: time.Millisecond, RefreshInterval: time.Hour})
	jwksRun(t, client)
	v := jwtTestVerifier(client)
	token := jwksTokenFor(t, k.a, "a")

	jwksEventually(t, "Run to retry", func() bool { return server.fetches.Load() >= 3 })
	if client.HasKeys() {
		t.Fatal("HasKeys with the server down")
	}
	if err := client.LastError(); err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("LastError = %v, want the 503", err)
	}
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, errJWKSNoKeySet) {
		t.Fatalf("Verify with the server down: err = %v", err)
	}

	server.setKeys(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey})
	jwksEventually(t, "key set after the server came up", client.HasKeys)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify after the server came up: %v", err)
	}
	if err := client.LastError(); err != nil {
		t.Errorf("LastError after success = %v", err)
	}
}

func TestJWKSKeepsLastGoodSet(t *testing.T) {
	k := jwtTestKeys()
	weakOnly, err := jwksDocument(map[string]*rsa.PublicKey{"weak": &k.weak.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"500", http.StatusInternalServerError, `{"keys":[]}`, "status 500"},
		{"garbage", http.StatusOK, "<html>bad gateway</html>", "jwks document: not a JSON object"},
		{"truncated JSON", http.StatusOK, `{"keys":[{"kty":"RSA"`, "jwks document: not a JSON object"},
		{"keys not an array", http.StatusOK, `{"keys":{}}`, `"keys" array missing`},
		{"empty key set", http.StatusOK, `{"keys":[]}`, "no usable RS256 key"},
		{"only a weak key", http.StatusOK, string(weakOnly), "no usable RS256 key"},
		{"empty body", http.StatusOK, "", "jwks document: not a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server := newJWKSTestServer(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey})
			client := server.client(jwksOptions{})
			clock := &jwksTestClock{now: jwtTestNow}
			client.now = clock.Now
			v := jwtTestVerifier(client)
			token := jwksTokenFor(t, k.a, "a")
			if _, err := v.Verify(context.Background(), token); err != nil {
				t.Fatalf("before the failure: %v", err)
			}

			server.setResponse(tc.status, []byte(tc.body), false)
			clock.advance(time.Minute)
			if _, err := client.PublicKey(context.Background(), "unknown"); !errors.Is(err, errJWKSUnknownKid) {
				t.Fatalf("refresh trigger: err = %v", err)
			}
			if got := server.fetches.Load(); got != 2 {
				t.Fatalf("fetches = %d, want 2", got)
			}
			if err := client.LastError(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("LastError = %v, want %q", err, tc.wantErr)
			}
			if !client.HasKeys() {
				t.Error("key set dropped")
			}
			if _, err := v.Verify(context.Background(), token); err != nil {
				t.Errorf("token of the last good set: %v", err)
			}
		})
	}
}

func TestJWKSBodyCap(t *testing.T) {
	k := jwtTestKeys()
	doc, err := jwksDocument(map[string]*rsa.PublicKey{"a": &k.a.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	// padded is the valid document followed by JSON whitespace, size bytes in all.
	padded := func(size int) []byte {
		return append(bytes.Clone(doc), bytes.Repeat([]byte{' '}, size-len(doc))...)
	}
	cases := []struct {
		name     string
		body     []byte
		chunked  bool
		wantKeys bool
	}{
		{"exactly 1 MiB", padded(jwksMaxBodyBytes), false, true},
		{"exactly 1 MiB, chunked", padded(jwksMaxBodyBytes), true, true},
		{"1 MiB + 1 with Content-Length", padded(jwksMaxBodyBytes + 1), false, false},
		{"1 MiB + 1 chunked", padded(jwksMaxBodyBytes + 1), true, false},
		{"8 MiB chunked", padded(8 << 20), true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server := newJWKSTestServer(t, nil)
			server.setResponse(http.StatusOK, tc.body, tc.chunked)
			client := server.client(jwksOptions{})
			_, err := client.PublicKey(context.Background(), "a")
			if tc.wantKeys {
				if err != nil {
					t.Fatalf("PublicKey: %v", err)
				}
				return
			}
			if !errors.Is(err, errJWKSNoKeySet) || !strings.Contains(err.Error(), "exceeds") {
				t.Fatalf("err = %v, want the body cap", err)
			}
			if client.HasKeys() {
				t.Error("HasKeys after an oversized body")
			}
		})
	}
}

func TestJWKSVerifiesTLS(t *testing.T) {
	k := jwtTestKeys()
	server := newJWKSTestServer(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey})
	cases := []struct {
		name    string
		rootCAs *x509.CertPool
	}{
		{"system roots", nil},
		{"another CA", jwksOtherCA(t)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := newJWKSClient(jwksOptions{URL: server.url(), RootCAs: tc.rootCAs})
			_, err := client.PublicKey(context.Background(), "a")
			// Without any system roots the failure is a SystemRootsError instead.
			var unknownAuthority x509.UnknownAuthorityError
			var noRoots x509.SystemRootsError
			if !errors.As(err, &unknownAuthority) && !errors.As(err, &noRoots) {
				t.Fatalf("err = %v, want a certificate verification failure", err)
			}
			if client.HasKeys() {
				t.Error("keys loaded over an untrusted connection")
			}
		})
	}
}

// jwksOtherCA is a pool holding one self-signed CA that did not sign the test server's certificate
// (every httptest server shares one built-in certificate, so another server would not do).
func jwksOtherCA(t *testing.T) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestJWKSRedirects(t *testing.T) {
	k := jwtTestKeys()
	server := newJWKSTestServer(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey})

	https := server.client(jwksOptions{URL: server.srv.URL + "/moved"})
	if _, err := https.PublicKey(context.Background(), "a"); err != nil {
		t.Fatalf("redirect within https: %v", err)
	}

	plain := server.client(jwksOptions{URL: server.srv.URL + "/to-plain-http"})
	_, err := plain.PublicKey(context.Background(), "a")
	if err == nil || !strings.Contains(err.Error(), "only https") {
		t.Fatalf("redirect to plain http: err = %v", err)
	}

	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.9.9.9": true, "::1": true,
		"example.com": false, "10.0.0.1": false, "localhost.example.com": false, "": false,
	} {
		if got := jwksIsLoopbackHost(host); got != want {
			t.Errorf("jwksIsLoopbackHost(%q) = %v", host, got)
		}
	}
}

func TestJWKSWeakKeySkippedAndLogged(t *testing.T) {
	k := jwtTestKeys()
	server := newJWKSTestServer(t, map[string]*rsa.PublicKey{"a": &k.a.PublicKey, "weak": &k.weak.PublicKey})
	logs := &jwksLogBuffer{}
	client := server.client(jwksOptions{
		MinRefreshGap: time.Nanosecond,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	v := jwtTestVerifier(client)

	if _, err := v.Verify(context.Background(), jwksTokenFor(t, k.a, "a")); err != nil {
		t.Fatalf("strong key next to a weak one: %v", err)
	}
	_, err := v.Verify(context.Background(), jwksTokenFor(t, k.weak, "weak"))
	if !errors.Is(err, errInvalidToken) || !errors.Is(err, errJWKSUnknownKid) {
		t.Fatalf("token of the 1024-bit key: err = %v", err)
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "kid=weak") ||
		!strings.Contains(got, "modulus of 1024 bits") {
		t.Errorf("weak key skip not logged as a warning:\n%s", got)
	}
}

func TestJWKSKidlessKey(t *testing.T) {
	k := jwtTestKeys()
	server := newJWKSTestServer(t, map[string]*rsa.PublicKey{"": &k.a.PublicKey})
	client := server.client(jwksOptions{MinRefreshGap: time.Nanosecond})
	v := jwtTestVerifier(client)
	if _, err := v.Verify(context.Background(), jwksTokenFor(t, k.a, "")); err != nil {
		t.Fatalf("token without kid, one key: %v", err)
	}
	server.setKeys(t, map[string]*rsa.PublicKey{"": &k.a.PublicKey, "b": &k.b.PublicKey})
	if _, err := client.PublicKey(context.Background(), "refresh"); !errors.Is(err, errJWKSUnknownKid) {
		t.Fatalf("refresh trigger: err = %v", err)
	}
	if _, err := v.Verify(context.Background(), jwksTokenFor(t, k.a, "")); !errors.Is(err, errJWKSUnknownKid) {
		t.Fatalf("token without kid, two keys: err = %v", err)
	}
}

func TestJWKSRunStopsWithContext(t *testing.T) {
	server := newJWKSTestServer(t, nil)
	server.setResponse(http.StatusBadGateway, nil, false)
	client := server.client(jwksOptions{RetryInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.Run(ctx)
	}()
	jwksEventually(t, "a few failed fetches", func() bool { return server.fetches.Load() >= 2 })
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// jwksTestEntry renders one JWK with these members, from a valid RS256 entry of key a.
func jwksTestEntry(mods map[string]any) map[string]any {
	k := jwtTestKeys()
	entry := map[string]any{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "a",
		"n": base64.RawURLEncoding.EncodeToString(k.a.N.Bytes()),
		"e": "AQAB",
	}
	for name, value := range mods {
		if value == jwtDelete {
			delete(entry, name)
			continue
		}
		entry[name] = value
	}
	return entry
}

func TestParseJWKSEntries(t *testing.T) {
	k := jwtTestKeys()
	b64 := base64.RawURLEncoding.EncodeToString
	modulusBits := func(bits int) string { // an odd number of exactly this many bits
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		return b64(n.SetBit(n, 0, 1).Bytes())
	}
	cases := []struct {
		name   string
		mods   map[string]any
		reason string // "" = the key is used
	}{
		{name: "valid"},
		{name: "no use, no alg", mods: map[string]any{"use": jwtDelete, "alg": jwtDelete}},
		{name: "no kid", mods: map[string]any{"kid": jwtDelete}},
		{name: "key_ops verify", mods: map[string]any{"key_ops": []string{"verify"}}},
		{name: "padded n", mods: map[string]any{"n": base64.URLEncoding.EncodeToString(k.a.N.Bytes())}},
		{name: "n with leading zero bytes", mods: map[string]any{"n": b64(append([]byte{0, 0}, k.a.N.Bytes()...))}},
		{name: "e 3", mods: map[string]any{"e": b64([]byte{3})}},
		{name: "e 2^31-1", mods: map[string]any{"e": b64([]byte{0x7f, 0xff, 0xff, 0xff})}},
		{name: "e with leading zeros", mods: map[string]any{"e": b64([]byte{0, 0, 0, 0, 0, 1, 0, 1})}},
		{name: "8192 bits", mods: map[string]any{"n": modulusBits(8192)}},
		{name: "EC key", mods: map[string]any{"kty": "EC"}, reason: `not an RS256 signing key: kty "EC"`},
		{name: "kty missing", mods: map[string]any{"kty": jwtDelete}, reason: `kty ""`},
		{name: "encryption key", mods: map[string]any{"use": "enc"}, reason: `use "enc"`},
		{name: "RS384 key", mods: map[string]any{"alg": "RS384"}, reason: `alg "RS384"`},
		{name: "PS256 key", mods: map[string]any{"alg": "PS256"}, reason: `alg "PS256"`},
		{name: "key_ops without verify", mods: map[string]any{"key_ops": []string{"encrypt"}}, reason: "key_ops without verify"},
		{name: "key_ops not strings", mods: map[string]any{"key_ops": []any{1}}, reason: "key_ops: element 0"},
		{name: "kid a number", mods: map[string]any{"kid": 1}, reason: "kid is not a string"},
		{name: "n missing", mods: map[string]any{"n": jwtDelete}, reason: "n missing"},
		{name: "n a number", mods: map[string]any{"n": 12345}, reason: "n is not a string"},
		{name: "n standard base64", mods: map[string]any{"n": base64.StdEncoding.EncodeToString(k.a.N.Bytes()) + "+/"}, reason: "n: illegal base64"},
		{name: "1024 bits", mods: map[string]any{"n": b64(k.weak.N.Bytes())}, reason: "modulus of 1024 bits, minimum is 2048"},
		{name: "2047 bits", mods: map[string]any{"n": modulusBits(2047)}, reason: "modulus of 2047 bits"},
		{name: "8193 bits", mods: map[string]any{"n": modulusBits(8193)}, reason: "modulus of 8193 bits, maximum is 8192"},
		{name: "n too long to decode", mods: map[string]any{"n": strings.Repeat("A", jwksMaxModulusChars+1)}, reason: "n longer than"},
		{name: "even modulus", mods: map[string]any{"n": b64(new(big.Int).Lsh(big.NewInt(1), 2047).Bytes())}, reason: "modulus is even"},
		{name: "e missing", mods: map[string]any{"e": jwtDelete}, reason: "e missing"},
		{name: "e 1", mods: map[string]any{"e": b64([]byte{1})}, reason: "exponent 1 not accepted"},
		{name: "e even", mods: map[string]any{"e": b64([]byte{1, 0, 0})}, reason: "exponent 65536 not accepted"},
		{name: "e 2^31+1", mods: map[string]any{"e": b64([]byte{0x80, 0, 0, 1})}, reason: "not accepted"},
		{name: "e 2^63+1", mods: map[string]any{"e": b64([]byte{0x80, 0, 0, 0, 0, 0, 0, 1})}, reason: "not accepted"},
		{name: "e too long", mods: map[string]any{"e": b64(make([]byte, 9))}, reason: "e longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := jwtTestJSON(map[string]any{"keys": []any{jwksTestEntry(tc.mods)}})
			keys, skipped, err := parseJWKS([]byte(doc))
			if err != nil {
				t.Fatalf("document rejected: %v", err)
			}
			if tc.reason == "" {
				if len(keys) != 1 || len(skipped) != 0 {
					t.Fatalf("keys %d, skipped %v; want the key used", len(keys), skipped)
				}
				return
			}
			if len(keys) != 0 || len(skipped) != 1 {
				t.Fatalf("keys %d, skipped %d; want the key skipped", len(keys), len(skipped))
			}
			if !strings.Contains(skipped[0].err.Error(), tc.reason) {
				t.Errorf("skip reason = %q, want %q", skipped[0].err, tc.reason)
			}
		})
	}
}

func TestParseJWKSDocuments(t *testing.T) {
	k := jwtTestKeys()
	entryA := jwksTestEntry(nil)
	entryB := jwksTestEntry(map[string]any{"kid": "b", "n": base64.RawURLEncoding.EncodeToString(k.b.N.Bytes())})
	entryBAsA := jwksTestEntry(map[string]any{"n": base64.RawURLEncoding.EncodeToString(k.b.N.Bytes())})
	tooMany := make([]any, jwksMaxKeys+1)
	for i := range tooMany {
		tooMany[i] = map[string]any{"kty": "EC"}
	}
	cases := []struct {
		name     string
		doc      string
		wantKids []string
		wantErr  string
	}{
		{name: "two keys", doc: jwtTestJSON(map[string]any{"keys": []any{entryA, entryB}}), wantKids: []string{"a", "b"}},
		{name: "duplicate kid drops both", doc: jwtTestJSON(map[string]any{"keys": []any{entryA, entryB, entryBAsA}}), wantKids: []string{"b"}},
		{name: "duplicate kid thrice", doc: jwtTestJSON(map[string]any{"keys": []any{entryA, entryBAsA, entryA}}), wantKids: []string{}},
		{name: "entry not an object", doc: jwtTestJSON(map[string]any{"keys": []any{"x", nil, entryA}}), wantKids: []string{"a"}},
		{name: "other members ignored", doc: `{"other":1,"keys":[` + jwtTestJSON(entryA) + `]}`, wantKids: []string{"a"}},
		{name: "exactly the key limit", doc: jwtTestJSON(map[string]any{"keys": append(tooMany[2:], entryA)}), wantKids: []string{"a"}},
		{name: "over the key limit", doc: jwtTestJSON(map[string]any{"keys": append(tooMany, entryA)}), wantErr: "102 keys, limit is 100"},
		{name: "null", doc: `null`, wantErr: "not a JSON object: null"},
		{name: "array", doc: `[` + jwtTestJSON(entryA) + `]`, wantErr: "not a JSON object"},
		{name: "keys missing", doc: `{"Keys":[]}`, wantErr: `"keys" array missing`},
		{name: "keys null", doc: `{"keys":null}`, wantErr: `"keys" array missing`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, _, err := parseJWKS([]byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			var kids []string
			for kid := range keys {
				kids = append(kids, kid)
			}
			if !jwksSameStrings(kids, tc.wantKids) {
				t.Errorf("kids = %q, want %q", kids, tc.wantKids)
			}
		})
	}
}

func jwksSameStrings(got, want []string) bool {
	seen := map[string]int{}
	for _, s := range got {
		seen[s]++
	}
	for _, s := range want {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestJWKSDocumentRoundTrip(t *testing.T) {
	k := jwtTestKeys()
	keys := map[string]*rsa.PublicKey{"b": &k.b.PublicKey, "a": &k.a.PublicKey}
	doc, err := jwksDocument(keys)
	if err != nil {
		t.Fatal(err)
	}
	var shape struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(doc, &shape); err != nil {
		t.Fatal(err)
	}
	if len(shape.Keys) != 2 || shape.Keys[0]["kid"] != "a" || shape.Keys[1]["kid"] != "b" {
		t.Fatalf("document not sorted by kid: %s", doc)
	}
	for _, entry := range shape.Keys {
		if entry["kty"] != "RSA" || entry["use"] != "sig" || entry["alg"] != "RS256" || entry["e"] != "AQAB" {
			t.Errorf("entry = %v", entry)
		}
	}
	parsed, skipped, err := parseJWKS(doc)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("parseJWKS: %v, skipped %v", err, skipped)
	}
	for kid, key := range keys {
		if !key.Equal(parsed[kid]) {
			t.Errorf("key %q changed in the round trip", kid)
		}
	}
	if _, err := jwksDocument(map[string]*rsa.PublicKey{"nil": nil}); err == nil {
		t.Error("jwksDocument accepted a nil key")
	}
	empty, err := jwksDocument(nil)
	if err != nil || string(empty) != `{"keys":[]}` {
		t.Errorf("empty document = %s, %v", empty, err)
	}
}

// FuzzParseJWKS: no document panics; every key returned obeys the bounds; what is returned
// renders and parses back to the same keys.
func FuzzParseJWKS(f *testing.F) {
	k := jwtTestKeys()
	for _, keys := range []map[string]*rsa.PublicKey{
		{"a": &k.a.PublicKey},
		{"a": &k.a.PublicKey, "b": &k.b.PublicKey, "weak": &k.weak.PublicKey},
		{"": &k.b.PublicKey},
	} {
		doc, err := jwksDocument(keys)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(doc)
	}
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-256"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"x","key_ops":["verify"],"n":"` + strings.Repeat("_", 344) + `","e":"AQ=="}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, skipped, err := parseJWKS(data)
		if err != nil {
			if keys != nil || skipped != nil {
				t.Fatalf("results returned with error %v", err)
			}
			return
		}
		if len(keys)+len(skipped) > jwksMaxKeys {
			t.Fatalf("%d keys + %d skipped over the limit", len(keys), len(skipped))
		}
		for kid, key := range keys {
			bits := key.N.BitLen()
			if bits < jwtMinRSAKeyBits || bits > jwtMaxRSAKeyBits || key.N.Bit(0) == 0 {
				t.Fatalf("kid %q: modulus of %d bits (odd: %v) accepted", kid, bits, key.N.Bit(0) == 1)
			}
			if key.E < 3 || key.E > jwksMaxExponent || key.E%2 == 0 {
				t.Fatalf("kid %q: exponent %d accepted", kid, key.E)
			}
		}
		doc, err := jwksDocument(keys)
		if err != nil {
			t.Fatalf("jwksDocument of parsed keys: %v", err)
		}
		again, _, err := parseJWKS(doc)
		if err != nil || len(again) != len(keys) {
			t.Fatalf("round trip: %d keys, err %v; want %d", len(again), err, len(keys))
		}
		for kid, key := range keys {
			if !key.Equal(again[kid]) {
				t.Fatalf("kid %q changed in the round trip", kid)
			}
		}
	})
}
