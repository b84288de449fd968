package main

// JWKS client: keeps the RS256 verification keys of the token issuer (CONTRACT §3).
//
// Document format (RFC 7517 §5): a JSON object {"keys": [JWK, ...]}. A JWK is used only when
//   - kty is "RSA"; use absent or "sig"; alg absent or "RS256"; key_ops absent or holds "verify";
//   - n (unpadded base64url, big-endian) is an odd modulus of 2048..8192 bits;
//   - e (unpadded base64url, big-endian) is odd and in 3..2^31-1.
//
// Other entries are skipped and logged (weak or malformed RSA keys at warn level, keys meant
// for another algorithm at debug level). A kid that appears twice is ambiguous and dropped.
// A document is rejected as a whole when it is not such an object, is larger than
// jwksMaxBodyBytes, holds more than jwksMaxKeys entries, or yields no usable key.
//
// Invariants:
//   - the key set is replaced only by a successful fetch, so the last good set survives
//     refresh failures (500s, garbage, an empty set);
//   - at most one fetch runs at a time (single flight); a lookup of an unknown kid starts a
//     fetch only when jwksOptions.MinRefreshGap has passed since the previous fetch started,
//     so a burst of made-up kids costs at most one fetch per gap;
//   - fetches verify TLS against jwksOptions.RootCAs (system roots when nil) and follow
//     redirects only to https (or plain http to a loopback host).

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	jwksMaxBodyBytes = 1 << 20
	jwksMaxKeys      = 100
	// jwksMaxModulusChars bounds n before decoding: 8192 bits are 1366 base64url characters;
	// the slack allows leading zero bytes, which some encoders emit.
	jwksMaxModulusChars = 2048
	// jwksMaxExponentChars bounds e before decoding (8 bytes of big-endian, with leading zeros).
	jwksMaxExponentChars = 11
	jwksMaxExponent      = 1<<31 - 1
	jwksMaxRedirects     = 5

	jwksDefaultRefreshInterval = 10 * time.Minute
	jwksDefaultMinRefreshGap   = 10 * time.Second
	jwksDefaultRetryInterval   = 5 * time.Second
	jwksMaxRetryInterval       = time.Minute
	jwksDefaultHTTPTimeout     = 10 * time.Second
)

var (
	errJWKSUnknownKid = errors.New("unknown kid")
	errJWKSNoKeySet   = errors.New("no JWKS key set loaded yet")
	// errJWKNotForRS256 marks entries that are fine but meant for something else (an EC key,
	// an encryption key): skipped quietly.
	errJWKNotForRS256 = errors.New("not an RS256 signing key")
)

type jwksOptions struct {
	URL             string         // already validated by config (https, or http to loopback)
	RootCAs         *x509.CertPool // nil = system roots
	RefreshInterval time.Duration  // periodic refresh; default 10m
	MinRefreshGap   time.Duration  // rate limit for refreshes triggered by an unknown kid; default 10s
	RetryInterval   time.Duration  // retry while fetches fail (start-up included); default 5s, backing off to at most 1m
	HTTPTimeout     time.Duration  // per fetch; default 10s
	Logger          *slog.Logger
	Client          *http.Client // optional override (tests); else built from RootCAs + HTTPTimeout
}

// jwksClient implements publicKeyLookup from a remote JWKS document.
type jwksClient struct {
	opts   jwksOptions // defaults applied
	client *http.Client
	log    *slog.Logger
	now    func() time.Time // the rate limit's clock; tests replace it before first use

	// keys is the current key set. The map is never mutated once stored: a fetch swaps in a new one.
	keys atomic.Pointer[map[string]*rsa.PublicKey]

	mu             sync.Mutex
	lastErr        error
	lastFetchStart time.Time  // zero before the first fetch
	inflight       *jwksFetch // non-nil while a fetch runs
}

// jwksFetch is one fetch that several callers may wait for.
type jwksFetch struct {
	done chan struct{} // closed when err is set
	err  error
}

func newJWKSClient(opts jwksOptions) *jwksClient {
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = jwksDefaultRefreshInterval
	}
	if opts.MinRefreshGap <= 0 {
		opts.MinRefreshGap = jwksDefaultMinRefreshGap
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = jwksDefaultRetryInterval
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = jwksDefaultHTTPTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client := opts.Client
	if client == nil {
		client = newJWKSHTTPClient(opts.RootCAs, opts.HTTPTimeout)
	}
	return &jwksClient{opts: opts, client: client, log: logger, now: time.Now}
}

// newJWKSHTTPClient builds the fetch client: TLS verified against rootCAs, bounded headers,
// redirects only where TLS (or loopback) still holds.
func newJWKSHTTPClient(rootCAs *x509.CertPool, timeout time.Duration) *http.Client {
	transport := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           2,
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{Transport: transport, Timeout: timeout, CheckRedirect: jwksCheckRedirect}
}

func jwksCheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= jwksMaxRedirects {
		return fmt.Errorf("more than %d redirects", jwksMaxRedirects)
	}
	if req.URL.Scheme == "https" {
		return nil
	}
	if req.URL.Scheme == "http" && jwksIsLoopbackHost(req.URL.Hostname()) {
		return nil
	}
	return fmt.Errorf("redirect to %s refused: only https", req.URL.Redacted())
}

func jwksIsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run fetches the key set at once, then every RefreshInterval; while fetches fail it retries
// after RetryInterval, doubling up to max(1m, RetryInterval). It returns when ctx is done.
func (c *jwksClient) Run(ctx context.Context) {
	retry := c.opts.RetryInterval
	maxRetry := max(jwksMaxRetryInterval, c.opts.RetryInterval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait := c.opts.RefreshInterval
		if err := c.refresh(ctx, ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Debug("jwks fetch will be retried", "url", c.opts.URL, "retry_in", retry.String())
			wait = retry
			retry = min(retry*2, maxRetry)
		} else {
			retry = c.opts.RetryInterval
		}
		timer.Reset(wait)
	}
}

// PublicKey implements publicKeyLookup. An unknown kid triggers one refresh when the rate
// limit allows (or waits for the fetch already running), then the lookup is tried again.
func (c *jwksClient) PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if key, ok := c.lookup(kid); ok {
		return key, nil
	}
	refreshErr := c.refreshForUnknownKid(ctx)
	if key, ok := c.lookup(kid); ok {
		return key, nil
	}
	if !c.HasKeys() {
		lastErr := c.LastError()
		if lastErr == nil {
			lastErr = refreshErr
		}
		if lastErr != nil {
			return nil, fmt.Errorf("%w: %w", errJWKSNoKeySet, lastErr)
		}
		return nil, errJWKSNoKeySet
	}
	if refreshErr != nil {
		return nil, fmt.Errorf("%w %q (refresh: %w)", errJWKSUnknownKid, jwtClip(kid), refreshErr)
	}
	return nil, fmt.Errorf("%w %q", errJWKSUnknownKid, jwtClip(kid))
}

// HasKeys reports whether a key set has been loaded.
func (c *jwksClient) HasKeys() bool {
	keys := c.keys.Load()
	return keys != nil && len(*keys) > 0
}

// LastError returns the error of the last completed fetch, nil when it succeeded.
func (c *jwksClient) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// lookup finds kid in the current set; kid "" matches only a set of exactly one key.
func (c *jwksClient) lookup(kid string) (*rsa.PublicKey, bool) {
	keys := c.keys.Load()
	if keys == nil {
		return nil, false
	}
	if kid == "" {
		if len(*keys) != 1 {
			return nil, false
		}
		for _, key := range *keys {
			return key, true
		}
	}
	key, ok := (*keys)[kid]
	return key, ok
}

// refreshForUnknownKid joins a running fetch, or starts one if MinRefreshGap has passed since
// the last fetch started. The fetch is detached from ctx so that one impatient caller does
// not fail the fetch for the others; it is still bounded by HTTPTimeout.
func (c *jwksClient) refreshForUnknownKid(ctx context.Context) error {
	c.mu.Lock()
	if f := c.inflight; f != nil {
		c.mu.Unlock()
		return c.wait(ctx, f)
	}
	if !c.lastFetchStart.IsZero() && c.now().Sub(c.lastFetchStart) < c.opts.MinRefreshGap {
		c.mu.Unlock()
		return nil // rate-limited: the caller sees the current set
	}
	f := c.startLocked(context.WithoutCancel(ctx))
	c.mu.Unlock()
	return c.wait(ctx, f)
}

// refresh joins a running fetch or starts one on fetchCtx, and waits for it on waitCtx.
func (c *jwksClient) refresh(waitCtx, fetchCtx context.Context) error {
	c.mu.Lock()
	f := c.inflight
	if f == nil {
		f = c.startLocked(fetchCtx)
	}
	c.mu.Unlock()
	return c.wait(waitCtx, f)
}

// startLocked starts a fetch in its own goroutine; c.mu must be held.
func (c *jwksClient) startLocked(ctx context.Context) *jwksFetch {
	f := &jwksFetch{done: make(chan struct{})}
	c.inflight = f
	c.lastFetchStart = c.now()
	go c.runFetch(ctx, f)
	return f
}

func (c *jwksClient) runFetch(ctx context.Context, f *jwksFetch) {
	keys, err := c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil && c.keys.Load() != nil:
		c.log.Warn("jwks fetch failed, keeping the last good key set", "url", c.opts.URL, "error", err)
	case err != nil:
		c.log.Warn("jwks fetch failed, no key set yet", "url", c.opts.URL, "error", err)
	case c.keys.Load() == nil || c.lastErr != nil: // first load, or recovered: worth an info line
		c.keys.Store(&keys)
		c.log.Info("jwks key set loaded", "url", c.opts.URL, "keys", len(keys))
	default:
		c.keys.Store(&keys)
		c.log.Debug("jwks key set refreshed", "url", c.opts.URL, "keys", len(keys))
	}
	c.lastErr = err
	c.inflight = nil
	f.err = err
	close(f.done)
}

func (c *jwksClient) wait(ctx context.Context, f *jwksFetch) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetch downloads and parses the document; it does not touch the client's state.
func (c *jwksClient) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.opts.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks fetch: status %d", resp.StatusCode)
	}
	if resp.ContentLength > jwksMaxBodyBytes {
		return nil, fmt.Errorf("jwks fetch: body of %d bytes exceeds %d", resp.ContentLength, jwksMaxBodyBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks fetch: read body: %w", err)
	}
	if len(body) > jwksMaxBodyBytes {
		return nil, fmt.Errorf("jwks fetch: body exceeds %d bytes", jwksMaxBodyBytes)
	}
	keys, skipped, err := parseJWKS(body)
	for _, skip := range skipped {
		level := slog.LevelWarn
		if errors.Is(skip.err, errJWKNotForRS256) {
			level = slog.LevelDebug
		}
		c.log.Log(ctx, level, "jwks key skipped", "index", skip.index, "kid", jwtClip(skip.kid), "reason", skip.err.Error())
	}
	if err != nil {
		return nil, fmt.Errorf("jwks document: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks document: no usable RS256 key")
	}
	return keys, nil
}

// jwkSkip says why entry index of a document was not used.
type jwkSkip struct {
	index int
	kid   string
	err   error
}

// parseJWKS parses a JWKS document into usable RS256 keys by kid, and reports skipped entries.
// It fails only when the document as a whole is unacceptable.
func parseJWKS(data []byte) (map[string]*rsa.PublicKey, []jwkSkip, error) {
	doc, err := jwtDecodeObject(data)
	if err != nil {
		return nil, nil, err
	}
	rawKeys, present := doc["keys"]
	if !present || jwtJSONKind(rawKeys) != '[' {
		return nil, nil, errors.New(`"keys" array missing`)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(rawKeys, &entries); err != nil {
		return nil, nil, fmt.Errorf(`"keys": %w`, err)
	}
	if len(entries) > jwksMaxKeys {
		return nil, nil, fmt.Errorf("%d keys, limit is %d", len(entries), jwksMaxKeys)
	}
	keys := make(map[string]*rsa.PublicKey, len(entries))
	duplicated := make(map[string]bool)
	var skipped []jwkSkip
	for i, entry := range entries {
		kid, key, err := parseJWK(entry)
		switch {
		case err != nil:
			skipped = append(skipped, jwkSkip{index: i, kid: kid, err: err})
		case duplicated[kid] || keys[kid] != nil:
			delete(keys, kid)
			duplicated[kid] = true
			skipped = append(skipped, jwkSkip{index: i, kid: kid, err: errors.New("kid used twice, all its keys dropped")})
		default:
			keys[kid] = key
		}
	}
	return keys, skipped, nil
}

// parseJWK turns one entry into an RSA public key; kid is returned even on error, for logs.
func parseJWK(entry json.RawMessage) (kid string, key *rsa.PublicKey, err error) {
	members, err := jwtDecodeObject(entry)
	if err != nil {
		return "", nil, err
	}
	if kid, _, err = jwtStringMember(members, "kid"); err != nil {
		return "", nil, err
	}
	if err := jwkCheckIntendedUse(members); err != nil {
		return kid, nil, err
	}
	modulus, err := jwkModulus(members)
	if err != nil {
		return kid, nil, err
	}
	exponent, err := jwkExponent(members)
	if err != nil {
		return kid, nil, err
	}
	return kid, &rsa.PublicKey{N: modulus, E: exponent}, nil
}

// jwkCheckIntendedUse accepts RSA keys meant for RS256 signatures (or not saying what for).
func jwkCheckIntendedUse(members map[string]json.RawMessage) error {
	kty, _, err := jwtStringMember(members, "kty")
	if err != nil {
		return err
	}
	if kty != "RSA" {
		return fmt.Errorf("%w: kty %q", errJWKNotForRS256, jwtClip(kty))
	}
	use, present, err := jwtStringMember(members, "use")
	if err != nil {
		return err
	}
	if present && use != "sig" {
		return fmt.Errorf("%w: use %q", errJWKNotForRS256, jwtClip(use))
	}
	alg, present, err := jwtStringMember(members, "alg")
	if err != nil {
		return err
	}
	if present && alg != "RS256" {
		return fmt.Errorf("%w: alg %q", errJWKNotForRS256, jwtClip(alg))
	}
	if raw, present := members["key_ops"]; present {
		ops, err := jwtStringArray(raw)
		if err != nil {
			return fmt.Errorf("key_ops: %w", err)
		}
		if !slices.Contains(ops, "verify") {
			return fmt.Errorf("%w: key_ops without verify", errJWKNotForRS256)
		}
	}
	return nil
}

func jwkModulus(members map[string]json.RawMessage) (*big.Int, error) {
	raw, err := jwkBase64URLMember(members, "n", jwksMaxModulusChars)
	if err != nil {
		return nil, err
	}
	n := new(big.Int).SetBytes(raw)
	bits := n.BitLen()
	if bits < jwtMinRSAKeyBits {
		return nil, fmt.Errorf("modulus of %d bits, minimum is %d", bits, jwtMinRSAKeyBits)
	}
	if bits > jwtMaxRSAKeyBits {
		return nil, fmt.Errorf("modulus of %d bits, maximum is %d", bits, jwtMaxRSAKeyBits)
	}
	if n.Bit(0) == 0 {
		return nil, errors.New("modulus is even")
	}
	return n, nil
}

func jwkExponent(members map[string]json.RawMessage) (int, error) {
	raw, err := jwkBase64URLMember(members, "e", jwksMaxExponentChars)
	if err != nil {
		return 0, err
	}
	var e uint64
	for _, b := range raw { // at most 8 bytes: jwksMaxExponentChars decodes to <= 8
		e = e<<8 | uint64(b)
	}
	if e < 3 || e > jwksMaxExponent || e%2 == 0 {
		return 0, fmt.Errorf("exponent %d not accepted: want odd, 3..%d", e, jwksMaxExponent)
	}
	return int(e), nil
}

// jwkBase64URLMember decodes a required base64url string member of at most maxChars
// characters. Trailing '=' padding is tolerated here: the document comes from the issuer over
// verified TLS, and RFC 7518 encoders differ on it.
func jwkBase64URLMember(members map[string]json.RawMessage, name string, maxChars int) ([]byte, error) {
	value, present, err := jwtStringMember(members, name)
	if err != nil {
		return nil, err
	}
	if !present || value == "" {
		return nil, fmt.Errorf("%s missing", name)
	}
	if len(value) > maxChars {
		return nil, fmt.Errorf("%s longer than %d characters", name, maxChars)
	}
	decoded, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return decoded, nil
}

// jwksDocument renders a JWKS JSON document for public keys (kty RSA, use sig, alg RS256,
// kid, n, e), sorted by kid. The dev mode serves it.
func jwksDocument(keys map[string]*rsa.PublicKey) ([]byte, error) {
	type jwk struct {
		Kty string `json:"kty"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		N   string `json:"n"`
		E   string `json:"e"`
	}
	entries := make([]jwk, 0, len(keys))
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		key := keys[kid]
		if key == nil || key.N == nil || key.E <= 0 {
			return nil, fmt.Errorf("jwks document: key %q is not a valid RSA public key", kid)
		}
		entries = append(entries, jwk{
			Kty: "RSA",
			Use: "sig",
			Alg: "RS256",
			Kid: kid,
			N:   base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		})
	}
	doc, err := json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{entries})
	if err != nil {
		return nil, fmt.Errorf("jwks document: %w", err)
	}
	return doc, nil
}
