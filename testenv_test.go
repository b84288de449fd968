package main

// Shared test harness: an SE built in-process (store + server) behind an httptest
// server, with an RSA key the tests sign tokens with.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testKeyOnce sync.Once
	testKey     *rsa.PrivateKey
)

const testKID = "test-key-1"

func sharedTestKey(t testing.TB) *rsa.PrivateKey {
	testKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// staticKeys is a fixed key set (no JWKS fetch) for handler tests.
type staticKeys map[string]*rsa.PublicKey

func (s staticKeys) PublicKey(_ context.Context, kid string) (*rsa.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, errors.New("unknown kid")
}

type testEnvOptions struct {
	mode        seMode
	maxFileSize int64
	maxCapacity int64
	dataDir     string
	walDir      string
}

type testEnv struct {
	t       testing.TB
	opts    testEnvOptions
	st      *store
	srv     *server
	ts      *httptest.Server
	metrics *seMetrics
	gc      *gcRunner
	recon   *reconciler
}

func newTestEnv(t testing.TB, modify ...func(*testEnvOptions)) *testEnv {
	t.Helper()
	o := testEnvOptions{mode: modeEdit, maxFileSize: 64 << 20, maxCapacity: 1 << 30}
	for _, m := range modify {
		m(&o)
	}
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	if o.walDir == "" {
		o.walDir = t.TempDir()
	}
	e := &testEnv{t: t, opts: o}
	e.start()
	return e
}

// start opens the store on the env's directories and serves it (also used to restart).
func (e *testEnv) start() {
	t := e.t
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := openStore(storeOptions{DataDir: e.opts.dataDir, WALDir: e.opts.walDir, SeedMode: e.opts.mode,
		MaxFileSize: e.opts.maxFileSize, MaxCapacity: e.opts.maxCapacity, Logger: log})
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	if err := st.start(context.Background()); err != nil {
		t.Fatalf("store start: %v", err)
	}
	m := newSEMetrics(st, "test", time.Now())
	cfg := &Config{StorageID: "se-test", ReplicaMode: "standalone"}
	e.st, e.metrics = st, m
	e.recon = newReconciler(st, m, log)
	e.gc = newGCRunner(st, m, log)
	hc := &healthChecker{store: st, dataDir: e.opts.dataDir, walDir: e.opts.walDir, reconciling: e.recon.running}
	hc.probe()
	e.srv = &server{cfg: cfg, store: st, metrics: m, health: hc, reconcile: e.recon, log: log, version: "test", now: time.Now,
		verifier: &tokenVerifier{Keys: staticKeys{testKID: &sharedTestKey(t).PublicKey}}}
	e.srv.routes()
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
}

// restart simulates a process restart on the same directories.
func (e *testEnv) restart() {
	e.ts.Close()
	e.start()
}

func (e *testEnv) token(scopes ...string) string {
	return e.tokenFor("tester", scopes...)
}

func (e *testEnv) tokenFor(sub string, scopes ...string) string {
	e.t.Helper()
	tok, err := signRS256(sharedTestKey(e.t), testKID, map[string]any{
		"sub": sub, "scopes": scopes, "exp": time.Now().Add(time.Hour).Unix(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

var allScopes = []string{scopeFilesRead, scopeFilesWrite, scopeStorageWrite, "storage:read"}

// do sends a request with a token holding every scope (token "" = none sent).
func (e *testEnv) do(method, path string, body io.Reader, header http.Header) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if _, ok := header["Authorization"]; !ok {
		req.Header.Set("Authorization", "Bearer "+e.token(allScopes...))
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// readBody reads and closes a response body.
func readBody(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

// expectError asserts status and error code of a JSON error response.
func expectError(t testing.TB, resp *http.Response, status int, code string) {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != code || eb.Error.Message == "" {
		t.Fatalf("error body %s, want code %s", body, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
}

func decodeJSON[T any](t testing.TB, resp *http.Response, status int) T {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// uploadPart describes one multipart part.
type uploadPart struct {
	name, filename, contentType string
	data                        []byte
}

func multipartBody(t testing.TB, parts ...uploadPart) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := `form-data; name="` + p.name + `"`
		if p.filename != "" {
			cd += `; filename="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.filename) + `"`
		}
		h.Set("Content-Disposition", cd)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.data)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func (e *testEnv) uploadParts(parts ...uploadPart) *http.Response {
	e.t.Helper()
	body, ct := multipartBody(e.t, parts...)
	return e.do("POST", "/api/v1/files/upload", body, http.Header{"Content-Type": {ct}})
}

// upload stores content and returns its metadata, failing the test on non-201.
func (e *testEnv) upload(name string, content []byte) FileMetadata {
	e.t.Helper()
	return decodeJSON[FileMetadata](e.t, e.uploadParts(uploadPart{name: "file", filename: name, contentType: "application/octet-stream", data: content}), http.StatusCreated)
}

func (e *testEnv) download(id string, header http.Header) *http.Response {
	return e.do("GET", "/api/v1/files/"+id+"/download", nil, header)
}

func (e *testEnv) transition(target string, confirm bool) *http.Response {
	body, _ := json.Marshal(map[string]any{"target_mode": target, "confirm": confirm})
	return e.do("POST", "/api/v1/mode/transition", bytes.NewReader(body), http.Header{"Content-Type": {"application/json"}})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
