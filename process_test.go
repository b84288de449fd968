// process_test.go — black-box tests of the real binary: build `se` once per `go test`
// run, start it as a separate process on 127.0.0.1, and judge it only by what an
// operator can see: HTTP statuses and bodies, exit codes, stderr lines, the files in
// SE_DATA_DIR / SE_WAL_DIR and /proc/<pid>/status.
//
// Harness invariants:
//   - The binary is built once (TestMain removes it) WITHOUT -race, so the memory test
//     measures the SE and not the race detector's shadow memory.
//   - Every process a test starts is registered with t.Cleanup and killed by its PID
//     (SIGKILL) if it is still running when the test ends; every wait on a process, a
//     request or a condition has a deadline, so no test can hang.
//   - Children get the test runner's environment minus every SE_* variable, plus the
//     SE_* variables the test sets: nothing from the developer's shell leaks in.
//   - Each test has its own temp dirs, its own self-signed TLS certificate (ECDSA P-256
//     for 127.0.0.1) and its own RSA-2048 signing key whose JWKS an httptest server
//     serves over plain http on 127.0.0.1 (config accepts http only for loopback).
//   - A child's stderr (and stdout) goes to a file that is printed when the test fails.
//   - Upload contents are AES-CTR keystreams from a seed: random-looking, reproducible,
//     generated on the fly (never held in memory) and hashed as they are sent.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---- the binary ----

var seBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// TestMain exists only to remove the binary built for the process tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if seBuild.dir != "" {
		os.RemoveAll(seBuild.dir)
	}
	os.Exit(code)
}

// seBinary builds the SE once per test run and returns its path.
func seBinary(t *testing.T) string {
	t.Helper()
	seBuild.once.Do(buildSEBinary)
	if seBuild.err != nil {
		t.Fatalf("build SE binary: %v", seBuild.err)
	}
	return seBuild.path
}

func buildSEBinary() {
	dir, err := os.MkdirTemp("", "se-process-test-")
	if err != nil {
		seBuild.err = fmt.Errorf("temp dir: %w", err)
		return
	}
	seBuild.dir, seBuild.path = dir, filepath.Join(dir, "se")
	goTool, err := goToolPath()
	if err != nil {
		seBuild.err = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", seBuild.path, ".").CombinedOutput()
	if err != nil {
		seBuild.err = fmt.Errorf("go build: %w\n%s", err, out)
	}
}

func goToolPath() (string, error) {
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find the go tool: %w", err)
	}
	return p, nil
}

// ---- child processes ----

// childProcess is one started binary; done is closed once it has been reaped.
type childProcess struct {
	name    string
	cmd     *exec.Cmd
	pid     int
	logPath string
	done    chan struct{}
	state   *os.ProcessState // valid after done
}

// exited reports whether the process has been reaped.
func (p *childProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits at most d for the process to end.
func (p *childProcess) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// signal sends sig to the process by PID unless it has already been reaped.
func (p *childProcess) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	return syscall.Kill(p.pid, sig)
}

// childEnv is the runner's environment without SE_* plus vars (a nil value unsets).
func childEnv(vars map[string]*string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SE_") {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := vars[k]; v != nil {
			env = append(env, k+"="+*v)
		}
	}
	return env
}

func strp(s string) *string { return &s }

// startChild starts the binary with args in dir; stdout goes to stdout when non-nil,
// otherwise with stderr to the log file. Cleanup kills it by PID and dumps its log
// when the test failed.
func startChild(t *testing.T, name string, args, env []string, dir string, stdout io.Writer) *childProcess {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create log: %v", err)
	}
	cmd := exec.Command(seBinary(t), args...)
	cmd.Env, cmd.Dir, cmd.Stderr, cmd.Stdout = env, dir, logFile, logFile
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &childProcess{name: name, cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		p.state = cmd.ProcessState
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			syscall.Kill(p.pid, syscall.SIGKILL)
			if !p.waitExit(10 * time.Second) {
				t.Errorf("%s (pid %d) did not die after SIGKILL", name, p.pid)
			}
		}
		if t.Failed() {
			t.Logf("---- %s (pid %d) output ----\n%s", name, p.pid, tailOfFile(logPath, 32<<10))
			// PROCESS_TEST_KEEP_LOGS=dir keeps whole child logs of failed tests for debugging.
			if d := os.Getenv("PROCESS_TEST_KEEP_LOGS"); d != "" {
				data, _ := os.ReadFile(logPath)
				os.WriteFile(filepath.Join(d, fmt.Sprintf("%s-%d.log", name, p.pid)), data, 0o644)
			}
		}
	})
	return p
}

func tailOfFile(path string, n int64) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	if int64(len(data)) > n {
		data = append([]byte("…"), data[int64(len(data))-n:]...)
	}
	return string(data)
}

// runChild runs the binary to completion (killed by PID after timeout) and returns
// its stdout, stderr and exit code (-1 when it did not exit by itself).
func runChild(t *testing.T, args, env []string, dir string, timeout time.Duration) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, seBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("se %v did not exit within %v", args, timeout)
		return stdout.String(), stderr.String(), -1
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run se %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ---- certificates and tokens ----

// writeSelfSignedCert writes a fresh certificate for 127.0.0.1 (and localhost) and its
// key to certPath/keyPath through temp files and renames, and returns the certificate.
func writeSelfSignedCert(t *testing.T, certPath, keyPath string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "se process test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFileViaRename(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	writeFileViaRename(t, certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writeFileViaRename(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// jwksJSON renders the JWKS document of one RSA public key.
func jwksJSON(kid string, pub *rsa.PublicKey) []byte {
	b64 := base64.RawURLEncoding.EncodeToString
	doc := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}}
	data, _ := json.Marshal(doc)
	return data
}

func jwksHandler(doc []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
}

// ---- the fixture: one SE's configuration and the client that talks to it ----

const procSubject = "proc-tester"

type seFixture struct {
	t        *testing.T
	root     string
	dataDir  string
	walDir   string
	certPath string
	keyPath  string
	cert     *x509.Certificate
	signKey  *rsa.PrivateKey
	kid      string
	jwksURL  string
	port     int
	env      map[string]*string // per-test SE_* overrides (nil value unsets)
	client   *http.Client
	starts   int
}

func newSEFixture(t *testing.T) *seFixture {
	t.Helper()
	root := t.TempDir()
	f := &seFixture{
		t: t, root: root, port: freePort(t), kid: "proc-key-1", env: map[string]*string{},
		dataDir: filepath.Join(root, "data"), walDir: filepath.Join(root, "wal"),
		certPath: filepath.Join(root, "tls.crt"), keyPath: filepath.Join(root, "tls.key"),
	}
	f.cert = writeSelfSignedCert(t, f.certPath, f.keyPath)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f.signKey = key
	jwks := httptest.NewServer(jwksHandler(jwksJSON(f.kid, &key.PublicKey)))
	t.Cleanup(jwks.Close)
	f.jwksURL = jwks.URL + "/jwks.json"
	f.client = newTLSClient(f.cert)
	t.Cleanup(f.client.CloseIdleConnections)
	return f
}

// newTLSClient trusts exactly the given certificates. No overall timeout: every request
// carries a context deadline instead, so multi-hundred-MiB transfers are not cut.
func newTLSClient(certs ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 8,
	}}
}

func (f *seFixture) baseURL() string { return "https://127.0.0.1:" + strconv.Itoa(f.port) }

func (f *seFixture) serveEnv() []string {
	vars := map[string]*string{
		"SE_STORAGE_ID": strp("se-proc-test"),
		"SE_DATA_DIR":   strp(f.dataDir),
		"SE_WAL_DIR":    strp(f.walDir),
		"SE_TLS_CERT":   strp(f.certPath),
		"SE_TLS_KEY":    strp(f.keyPath),
		"SE_JWKS_URL":   strp(f.jwksURL),
		"SE_PORT":       strp(strconv.Itoa(f.port)),
		"SE_BIND_ADDR":  strp("127.0.0.1"),
		"SE_LOG_LEVEL":  strp("debug"),
		"SE_LOG_FORMAT": strp("text"),
	}
	for k, v := range f.env {
		vars[k] = v
	}
	return childEnv(vars)
}

// start runs `se serve` on the fixture's directories.
func (f *seFixture) start() *childProcess {
	f.t.Helper()
	f.starts++
	return startChild(f.t, fmt.Sprintf("se-serve-%d", f.starts), []string{"serve"}, f.serveEnv(), f.root, nil)
}

// startReady starts the SE and waits until /health/ready answers 200.
func (f *seFixture) startReady() *childProcess {
	f.t.Helper()
	p := f.start()
	f.waitReady(p)
	return p
}

// waitReady polls /health/ready until 200 (ok or degraded), at most 20 s.
func (f *seFixture) waitReady(p *childProcess) readyBody {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p.exited() {
			f.t.Fatalf("%s exited before it became ready: %v", p.name, p.state)
		}
		var body readyBody
		status, err := f.getJSON("/health/ready", "", &body)
		if err == nil && status == http.StatusOK {
			if body.Status != "ok" && body.Status != "degraded" {
				f.t.Fatalf("ready 200 with status %q", body.Status)
			}
			return body
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s not ready within 20s (last: status %d, err %v)", p.name, status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killHard sends SIGKILL and waits (bounded) until the process is reaped.
func (f *seFixture) killHard(p *childProcess) {
	f.t.Helper()
	if err := p.signal(syscall.SIGKILL); err != nil {
		f.t.Fatalf("kill -9 %d: %v", p.pid, err)
	}
	if !p.waitExit(10 * time.Second) {
		f.t.Fatalf("%s did not die within 10s of SIGKILL", p.name)
	}
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		f.t.Fatalf("%s ended with %v before the kill", p.name, p.state)
	}
}

func (f *seFixture) token(scopes ...string) string {
	f.t.Helper()
	return signToken(f.t, f.signKey, f.kid, procSubject, scopes...)
}

func signToken(t *testing.T, key *rsa.PrivateKey, kid, sub string, scopes ...string) string {
	t.Helper()
	tok, err := signRS256(key, kid, map[string]any{
		"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "scopes": scopes,
	})
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return tok
}

// request sends one request with a deadline; the caller closes the body.
func (f *seFixture) request(ctx context.Context, method, path, token string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, f.baseURL()+path, body)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return f.client.Do(req)
}

// getJSON GETs path (10 s deadline) and decodes a JSON body into out when non-nil.
func (f *seFixture) getJSON(path, token string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := f.request(ctx, http.MethodGet, path, token, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", data, err)
		}
	}
	return resp.StatusCode, nil
}

// mustGetJSON is getJSON that fails the test unless the status is want.
func (f *seFixture) mustGetJSON(path, token string, want int, out any) {
	f.t.Helper()
	status, err := f.getJSON(path, token, out)
	if err != nil || status != want {
		f.t.Fatalf("GET %s: status %d err %v, want %d", path, status, err, want)
	}
}

// ---- wire shapes, declared here from CONTRACT §4/§5 so the test does not share the
// server's types ----

type procFileMeta struct {
	FileID           string     `json:"file_id"`
	OriginalFilename string     `json:"original_filename"`
	ContentType      string     `json:"content_type"`
	Size             int64      `json:"size"`
	Checksum         string     `json:"checksum"`
	UploadedBy       string     `json:"uploaded_by"`
	UploadedAt       time.Time  `json:"uploaded_at"`
	Description      *string    `json:"description"`
	Tags             []string   `json:"tags"`
	Status           string     `json:"status"`
	RetentionPolicy  string     `json:"retention_policy"`
	TTLDays          *int       `json:"ttl_days"`
	ExpiresAt        *time.Time `json:"expires_at"`
}

func (m procFileMeta) canonical() string {
	data, _ := json.Marshal(m)
	return string(data)
}

type procFileList struct {
	Items   []procFileMeta `json:"items"`
	Total   int            `json:"total"`
	HasMore bool           `json:"has_more"`
}

type procInfo struct {
	StorageID string `json:"storage_id"`
	Mode      string `json:"mode"`
	Status    string `json:"status"`
	Capacity  struct {
		TotalBytes     int64 `json:"total_bytes"`
		UsedBytes      int64 `json:"used_bytes"`
		AvailableBytes int64 `json:"available_bytes"`
	} `json:"capacity"`
}

type readyBody struct {
	Status string `json:"status"`
}

type procErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ---- upload content ----

// patternReader yields size bytes of an AES-CTR keystream derived from seed and hashes
// what it hands out. It is read by the HTTP transport's goroutine, hence the mutex.
type patternReader struct {
	mu     sync.Mutex
	stream cipher.Stream
	left   int64
	size   int64
	h      hash.Hash
}

func newPatternReader(seed uint64, size int64) *patternReader {
	var key [16]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], ^seed)
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 16-byte key always works
	}
	return &patternReader{stream: cipher.NewCTR(block, make([]byte, aes.BlockSize)), left: size, size: size, h: sha256.New()}
}

func (r *patternReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.left))
	clear(p[:n])
	r.stream.XORKeyStream(p[:n], p[:n])
	r.h.Write(p[:n])
	r.left -= int64(n)
	return n, nil
}

// result reports whether every byte was handed out and, if so, their SHA-256.
func (r *patternReader) result() (complete bool, sum string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left != 0 {
		return false, ""
	}
	return true, hex.EncodeToString(r.h.Sum(nil))
}

// stallingReader hands out the first half bytes of inner, then blocks until Close (the
// transport closes the body when the request dies) and fails. halfway is closed when
// the transport asks for more after half was handed out.
type stallingReader struct {
	inner     io.Reader
	half      int64
	mu        sync.Mutex
	sent      int64
	halfway   chan struct{}
	closed    chan struct{}
	halfOnce  sync.Once
	closeOnce sync.Once
}

func newStallingReader(inner io.Reader, half int64) *stallingReader {
	return &stallingReader{inner: inner, half: half, halfway: make(chan struct{}), closed: make(chan struct{})}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	s.mu.Lock()
	left := s.half - s.sent
	s.mu.Unlock()
	if left <= 0 {
		s.halfOnce.Do(func() { close(s.halfway) })
		<-s.closed
		return 0, errors.New("stalled upload abandoned")
	}
	n, err := s.inner.Read(p[:min(int64(len(p)), left)])
	s.mu.Lock()
	s.sent += int64(n)
	s.mu.Unlock()
	return n, err
}

func (s *stallingReader) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// uploadSpec is one multipart upload: content is the file part's bytes.
type uploadSpec struct {
	filename    string
	contentType string
	description *string
	tags        []string
	fieldsAfter bool // description/tags after the file part
	content     io.Reader
	size        int64 // announced in Content-Length; -1 = chunked
}

// multipartFraming returns the bytes before and after the file content.
func multipartFraming(spec uploadSpec) (head, tail []byte, contentType string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fields := func() {
		if spec.description != nil {
			mw.WriteField("description", *spec.description)
		}
		if spec.tags != nil {
			tj, _ := json.Marshal(spec.tags)
			mw.WriteField("tags", string(tj))
		}
	}
	if !spec.fieldsAfter {
		fields()
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+spec.filename+`"`)
	h.Set("Content-Type", spec.contentType)
	mw.CreatePart(h)
	head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if spec.fieldsAfter {
		fields()
	}
	mw.Close()
	return head, bytes.Clone(buf.Bytes()), mw.FormDataContentType()
}

type readCloser struct {
	io.Reader
	io.Closer
}

// upload sends spec and returns the status and body (err when the transfer failed).
func (f *seFixture) upload(ctx context.Context, token string, spec uploadSpec) (int, []byte, error) {
	head, tail, ct := multipartFraming(spec)
	var body io.Reader = io.MultiReader(bytes.NewReader(head), spec.content, bytes.NewReader(tail))
	if c, ok := spec.content.(io.Closer); ok {
		body = readCloser{body, c}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.baseURL()+"/api/v1/files/upload", body)
	if err != nil {
		return 0, nil, err
	}
	req.ContentLength = -1
	if spec.size >= 0 {
		req.ContentLength = int64(len(head)) + spec.size + int64(len(tail))
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// uploadPattern uploads size pattern bytes and fails the test unless it gets a 201
// whose checksum and size match what was sent.
func (f *seFixture) uploadPattern(token, name string, seed uint64, size int64) procFileMeta {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := newPatternReader(seed, size)
	status, body, err := f.upload(ctx, token, uploadSpec{filename: name, contentType: "application/octet-stream", content: src, size: size})
	if err != nil || status != http.StatusCreated {
		f.t.Fatalf("upload %s: status %d err %v body %s", name, status, err, body)
	}
	var meta procFileMeta
	if err := json.Unmarshal(body, &meta); err != nil {
		f.t.Fatalf("decode upload response %s: %v", body, err)
	}
	_, sum := src.result()
	if meta.Checksum != sum || meta.Size != size {
		f.t.Fatalf("upload %s: server says size %d checksum %s, sent %d bytes with %s", name, meta.Size, meta.Checksum, size, sum)
	}
	return meta
}

// downloadResult is what one full download delivered.
type downloadResult struct {
	status int
	n      int64
	sum    string
	header http.Header
}

// download streams a file, hashing it, without holding it in memory.
func (f *seFixture) download(ctx context.Context, token, id string) (downloadResult, error) {
	resp, err := f.request(ctx, http.MethodGet, "/api/v1/files/"+id+"/download", token, nil)
	if err != nil {
		return downloadResult{}, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return downloadResult{status: resp.StatusCode, n: n, sum: hex.EncodeToString(h.Sum(nil)), header: resp.Header}, err
}

// checkDownload fails the test unless the file downloads whole with its checksum.
func (f *seFixture) checkDownload(token string, m procFileMeta) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, err := f.download(ctx, token, m.FileID)
	switch {
	case err != nil:
		f.t.Errorf("download %s (%s): %v", m.FileID, m.OriginalFilename, err)
	case got.status != http.StatusOK:
		f.t.Errorf("download %s: status %d", m.FileID, got.status)
	case got.n != m.Size || got.sum != m.Checksum:
		f.t.Errorf("download %s: got %d bytes sha256 %s, want %d bytes %s", m.FileID, got.n, got.sum, m.Size, m.Checksum)
	case got.header.Get("Content-Length") != strconv.FormatInt(m.Size, 10):
		f.t.Errorf("download %s: Content-Length %q, want %d", m.FileID, got.header.Get("Content-Length"), m.Size)
	case got.header.Get("ETag") != `"`+m.Checksum+`"`:
		f.t.Errorf("download %s: ETag %q", m.FileID, got.header.Get("ETag"))
	}
}

// listAll pages through every file (all statuses) with limit 1000.
func (f *seFixture) listAll(token string) []procFileMeta {
	f.t.Helper()
	var all []procFileMeta
	for offset := 0; ; {
		var page procFileList
		f.mustGetJSON(fmt.Sprintf("/api/v1/files?limit=1000&offset=%d", offset), token, http.StatusOK, &page)
		all = append(all, page.Items...)
		offset += len(page.Items)
		if len(page.Items) < 1000 {
			if page.Total != len(all) || page.HasMore {
				f.t.Fatalf("list: total %d has_more %v after %d items", page.Total, page.HasMore, len(all))
			}
			return all
		}
	}
}

func (f *seFixture) usedBytes() int64 {
	f.t.Helper()
	var info procInfo
	f.mustGetJSON("/api/v1/info", "", http.StatusOK, &info)
	return info.Capacity.UsedBytes
}

// ---- on-disk checks ----

var (
	storageNameID = regexp.MustCompile(`_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\.[a-z0-9]+)?$`)
	hexPair       = regexp.MustCompile(`^[0-9a-f]{2}$`)
)

// diskCensus is what a walk of SE_DATA_DIR found.
type diskCensus struct {
	blobs    map[string]int64 // "ab/cd/name" → size
	sidecars map[string]bool  // "ab/cd/name" of the blob each sidecar belongs to
	temps    []string
	problems []string // entries that break the layout
}

// censusDataDir walks the data directory: only mode.json at the top, two levels of
// hex shard directories, plain files below them.
func censusDataDir(dataDir string) (diskCensus, error) {
	c := diskCensus{blobs: map[string]int64{}, sidecars: map[string]bool{}}
	tops, err := os.ReadDir(dataDir)
	if err != nil {
		return c, err
	}
	for _, top := range tops {
		switch {
		case top.Name() == "mode.json" && top.Type().IsRegular():
		case top.IsDir() && hexPair.MatchString(top.Name()):
			if err := c.walkShard(dataDir, top.Name()); err != nil {
				return c, err
			}
		default:
			c.problems = append(c.problems, "unexpected top-level entry "+top.Name())
		}
	}
	return c, nil
}

func (c *diskCensus) walkShard(dataDir, l1 string) error {
	subs, err := os.ReadDir(filepath.Join(dataDir, l1))
	if err != nil {
		return err
	}
	for _, sub := range subs {
		rel := l1 + "/" + sub.Name()
		if !sub.IsDir() || !hexPair.MatchString(sub.Name()) {
			c.problems = append(c.problems, "unexpected entry "+rel)
			continue
		}
		if err := c.walkLeaf(dataDir, rel); err != nil {
			return err
		}
	}
	return nil
}

func (c *diskCensus) walkLeaf(dataDir, rel string) error {
	entries, err := os.ReadDir(filepath.Join(dataDir, rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		name, path := e.Name(), rel+"/"+e.Name()
		if strings.HasPrefix(name, ".tmp.") {
			c.temps = append(c.temps, path)
			continue
		}
		if !e.Type().IsRegular() {
			c.problems = append(c.problems, "non-regular entry "+path)
			continue
		}
		blob := strings.TrimSuffix(name, ".attr.json")
		m := storageNameID.FindStringSubmatch(blob)
		if m == nil || strings.ReplaceAll(m[1], "-", "")[:4] != strings.ReplaceAll(rel, "/", "") {
			c.problems = append(c.problems, "entry not named for its shard "+path)
			continue
		}
		if blob != name {
			c.sidecars[rel+"/"+blob] = true
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		c.blobs[path] = info.Size()
	}
	return nil
}

// checkStoreOnDisk asserts a consistent store after recovery: no temp files, no stray
// entries, every blob with exactly one sidecar and vice versa, an empty WAL directory.
// It returns the number of blob+sidecar pairs.
func checkStoreOnDisk(t *testing.T, dataDir, walDir string) int {
	t.Helper()
	c, err := censusDataDir(dataDir)
	if err != nil {
		t.Fatalf("walk data dir: %v", err)
	}
	for _, p := range c.problems {
		t.Errorf("data dir: %s", p)
	}
	if len(c.temps) > 0 {
		t.Errorf("data dir: temp files left after recovery: %v", c.temps)
	}
	for blob := range c.blobs {
		if !c.sidecars[blob] {
			t.Errorf("data dir: blob without sidecar: %s", blob)
		}
	}
	for blob := range c.sidecars {
		if _, ok := c.blobs[blob]; !ok {
			t.Errorf("data dir: sidecar without blob: %s.attr.json", blob)
		}
	}
	if names := dirNames(t, walDir); len(names) > 0 {
		t.Errorf("WAL dir not empty after recovery: %v", names)
	}
	return len(c.sidecars)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func countSuffix(names []string, suffix string) int {
	n := 0
	for _, name := range names {
		if strings.HasSuffix(name, suffix) {
			n++
		}
	}
	return n
}

// waitFor polls cond every 20 ms for at most d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tempFileWithData reports whether some upload temp file in dataDir holds bytes.
func tempFileWithData(dataDir string) bool {
	c, err := censusDataDir(dataDir)
	if err != nil {
		return false
	}
	for _, rel := range c.temps {
		if st, err := os.Stat(filepath.Join(dataDir, rel)); err == nil && st.Size() > 0 {
			return true
		}
	}
	return false
}

// waitGroupWithin waits for wg at most d.
func waitGroupWithin(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func testSeed(t *testing.T) uint64 {
	if s := os.Getenv("PROCESS_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("PROCESS_TEST_SEED: %v", err)
		}
		return v
	}
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// ---- 1. kill -9 during uploads ----

// uploadAttempt is one upload of the crash test and what the client learnt of it.
type uploadAttempt struct {
	name   string
	size   int64
	src    *patternReader
	status int // 0 when the transfer failed (outcome unknown)
	meta   procFileMeta
	err    error
	tags   []string
	desc   *string
	ctype  string
	body   io.Reader // sent instead of src when set (the stalling upload)
}

// crashLedger is what the client knows across kill/restart cycles.
type crashLedger struct {
	committed map[string]procFileMeta   // file_id → metadata of uploads that got 201 (or were found committed)
	unknown   map[string]*uploadAttempt // original_filename → uploads whose outcome the client never learnt
}

// killPlan decides when, during a cycle, the SE gets SIGKILL.
type killPlan struct {
	name      string
	smallOnly bool // only tiny files: the commit path (rename, sidecar, fsync) dominates
	wait      func(f *seFixture, c *crashCycle) bool
}

// crashCycle is one round of concurrent uploads ended by a kill.
type crashCycle struct {
	rng       *mrand.Rand
	stall     *stallingReader
	committed atomic.Int32
}

var killPlans = []killPlan{
	{name: "stalled-stream", wait: func(f *seFixture, c *crashCycle) bool {
		// A large chunked upload is half sent and its temp file holds bytes.
		select {
		case <-c.stall.halfway:
		case <-time.After(15 * time.Second):
			return false
		}
		if !waitFor(10*time.Second, func() bool { return tempFileWithData(f.dataDir) }) {
			return false
		}
		time.Sleep(time.Duration(c.rng.IntN(30)) * time.Millisecond)
		return true
	}},
	{name: "random-delay", wait: func(f *seFixture, c *crashCycle) bool {
		time.Sleep(time.Duration(100+c.rng.IntN(800)) * time.Millisecond)
		return true
	}},
	{name: "after-commits", wait: func(f *seFixture, c *crashCycle) bool {
		ok := waitFor(15*time.Second, func() bool { return c.committed.Load() >= 5 })
		time.Sleep(time.Duration(c.rng.IntN(5)) * time.Millisecond)
		return ok
	}},
	{name: "small-files-burst", smallOnly: true, wait: func(f *seFixture, c *crashCycle) bool {
		time.Sleep(time.Duration(50+c.rng.IntN(400)) * time.Millisecond)
		return true
	}},
}

// TestProcessKill9DuringUploads: concurrent uploads, SIGKILL at a random moment (one
// cycle while a large streaming upload is half sent), restart on the same dirs. After
// each restart every 201 upload downloads intact with its metadata, in-flight uploads
// are either complete or absent, the disk holds only complete blob+sidecar pairs, the
// WAL is empty, and used_bytes is the sum of the sizes.
func TestProcessKill9DuringUploads(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d (set PROCESS_TEST_SEED to replay)", seed)
	rng := mrand.New(mrand.NewPCG(seed, seed^0x5eed))
	f := newSEFixture(t)
	token := f.token("files:read", "files:write")
	ledger := &crashLedger{committed: map[string]procFileMeta{}, unknown: map[string]*uploadAttempt{}}
	p := f.startReady()
	for i, plan := range killPlans {
		attempts := f.crashCycle(p, i, plan, rng, token)
		recordAttempts(ledger, attempts)
		p = f.startReady()
		verifyAfterCrash(t, f, ledger, token)
		if t.Failed() {
			t.Fatalf("cycle %d (%s) left an inconsistent store", i, plan.name)
		}
	}
	t.Logf("%d files committed over %d kill/restart cycles", len(ledger.committed), len(killPlans))
}

// crashCycle runs three upload workers plus one stalling large upload, kills the SE
// when plan says so, and returns every attempt.
func (f *seFixture) crashCycle(p *childProcess, cycle int, plan killPlan, rng *mrand.Rand, token string) []*uploadAttempt {
	t := f.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := &crashCycle{rng: mrand.New(mrand.NewPCG(rng.Uint64(), rng.Uint64()))}
	var mu sync.Mutex
	var attempts []*uploadAttempt
	record := func(a *uploadAttempt) {
		mu.Lock()
		attempts = append(attempts, a)
		mu.Unlock()
		if a.status == http.StatusCreated {
			c.committed.Add(1)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wrng := mrand.New(mrand.NewPCG(rng.Uint64(), rng.Uint64()))
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := newAttempt(wrng, fmt.Sprintf("c%d-w%d-%d.bin", cycle, w, i), plan.smallOnly)
				record(f.runAttempt(ctx, token, a, wrng))
			}
		})
	}
	bigSize := int64(8<<20 + rng.IntN(1<<20))
	big := &uploadAttempt{name: fmt.Sprintf("c%d-stalled.bin", cycle), size: bigSize, src: newPatternReader(rng.Uint64(), bigSize),
		ctype: "application/octet-stream"}
	c.stall = newStallingReader(big.src, bigSize/2)
	big.body = c.stall
	brng := mrand.New(mrand.NewPCG(rng.Uint64(), rng.Uint64()))
	wg.Go(func() { record(f.runAttempt(ctx, token, big, brng)) })

	if !plan.wait(f, c) {
		close(stop)
		t.Fatalf("cycle %d (%s): the kill moment never came", cycle, plan.name)
	}
	f.killHard(p)
	close(stop)
	c.stall.Close()
	if !waitGroupWithin(&wg, 30*time.Second) {
		t.Fatalf("cycle %d: uploads still running 30s after the kill", cycle)
	}
	walNames := dirNames(t, f.walDir)
	census, _ := censusDataDir(f.dataDir)
	t.Logf("cycle %d (%s): killed after %d attempts, %d got 201; on disk at the crash: %d pending WAL entries, %d temp files, %d blobs, %d sidecars",
		cycle, plan.name, len(attempts), c.committed.Load(), countSuffix(walNames, ".wal.json"), len(census.temps), len(census.blobs), len(census.sidecars))
	if plan.name == "stalled-stream" && (countSuffix(walNames, ".wal.json") == 0 || len(census.temps) == 0) {
		t.Fatalf("cycle %d: killed mid-upload but found no pending WAL entry or temp file to recover", cycle)
	}
	return attempts
}

// newAttempt picks a size (0 bytes to a few MiB), metadata and part order.
func newAttempt(rng *mrand.Rand, name string, smallOnly bool) *uploadAttempt {
	var size int64
	switch r := rng.IntN(10); {
	case r == 0:
		size = 0
	case r < 4 || smallOnly:
		size = int64(rng.IntN(4 << 10))
	case r < 8:
		size = int64(rng.IntN(256 << 10))
	default:
		size = int64(rng.IntN(3 << 20))
	}
	a := &uploadAttempt{name: name, size: size, src: newPatternReader(rng.Uint64(), size), ctype: "application/octet-stream"}
	if rng.IntN(2) == 0 {
		a.ctype = "image/png"
		a.tags = []string{"crash", strconv.Itoa(rng.IntN(100))}
	}
	if rng.IntN(3) == 0 {
		a.desc = strp("kill -9 test upload " + name)
	}
	return a
}

// runAttempt sends one upload and classifies the answer. It runs on a worker
// goroutine, so answers that can never be right are reported with Errorf.
func (f *seFixture) runAttempt(ctx context.Context, token string, a *uploadAttempt, rng *mrand.Rand) *uploadAttempt {
	spec := uploadSpec{filename: a.name, contentType: a.ctype, description: a.desc, tags: a.tags,
		fieldsAfter: rng.IntN(2) == 0, content: a.src, size: a.size}
	if a.body != nil {
		spec.content = a.body
	}
	if a.body != nil || rng.IntN(2) == 0 {
		spec.size = -1 // chunked
	}
	status, body, err := f.upload(ctx, token, spec)
	a.err = err
	if err != nil {
		return a
	}
	a.status = status
	if status != http.StatusCreated {
		f.t.Errorf("upload %s: status %d body %s", a.name, status, body)
		return a
	}
	if jerr := json.Unmarshal(body, &a.meta); jerr != nil {
		f.t.Errorf("upload %s: bad body %s", a.name, body)
		return a
	}
	if msg := checkUploadMeta(a, a.meta); msg != "" {
		f.t.Errorf("upload %s: 201 with wrong metadata: %s", a.name, msg)
	}
	return a
}

// checkUploadMeta compares metadata with what the client sent ("" when it matches).
func checkUploadMeta(a *uploadAttempt, m procFileMeta) string {
	complete, sum := a.src.result()
	switch {
	case !complete:
		return "the client never finished sending the content"
	case m.Size != a.size || m.Checksum != sum:
		return fmt.Sprintf("size %d checksum %s, sent %d bytes %s", m.Size, m.Checksum, a.size, sum)
	case m.OriginalFilename != a.name || m.ContentType != a.ctype || m.UploadedBy != procSubject:
		return fmt.Sprintf("filename %q content type %q uploaded_by %q", m.OriginalFilename, m.ContentType, m.UploadedBy)
	case m.Status != "active" || m.RetentionPolicy != "temporary" || m.TTLDays == nil || *m.TTLDays != 30:
		return fmt.Sprintf("status %q retention %q ttl %v", m.Status, m.RetentionPolicy, m.TTLDays)
	case m.ExpiresAt == nil || !m.ExpiresAt.Equal(m.UploadedAt.Add(30*24*time.Hour)):
		return fmt.Sprintf("expires_at %v for uploaded_at %v", m.ExpiresAt, m.UploadedAt)
	case fmt.Sprint(m.Tags) != fmt.Sprint(a.tags) || (m.Tags == nil) != (a.tags == nil):
		return fmt.Sprintf("tags %q, sent %q", m.Tags, a.tags)
	case (m.Description == nil) != (a.desc == nil) || (a.desc != nil && *m.Description != *a.desc):
		return fmt.Sprintf("description %v, sent %v", m.Description, a.desc)
	}
	return ""
}

func recordAttempts(ledger *crashLedger, attempts []*uploadAttempt) {
	for _, a := range attempts {
		if a.status == http.StatusCreated {
			ledger.committed[a.meta.FileID] = a.meta
			continue
		}
		if a.err != nil {
			ledger.unknown[a.name] = a
		}
	}
}

// verifyAfterCrash checks the restarted SE against the ledger and the disk, then
// folds uploads found committed into the ledger (unknown ones not found are gone for
// good: if they show up later, that is a resurrection).
func verifyAfterCrash(t *testing.T, f *seFixture, ledger *crashLedger, token string) {
	t.Helper()
	items := f.listAll(token)
	seen := map[string]bool{}
	var used int64
	for _, it := range items {
		seen[it.FileID] = true
		if it.Status == "active" {
			used += it.Size
		}
		want, ok := ledger.committed[it.FileID]
		if ok {
			if want.canonical() != it.canonical() {
				t.Errorf("file %s changed across the crash:\n got  %s\n want %s", it.FileID, it.canonical(), want.canonical())
			}
		} else if !adoptUnknown(t, ledger, it) {
			continue
		}
		f.checkDownload(token, it)
	}
	for id, m := range ledger.committed {
		if !seen[id] {
			t.Errorf("upload %s (%s, %d bytes) got 201 but is gone after the crash", id, m.OriginalFilename, m.Size)
		}
	}
	clear(ledger.unknown)
	if pairs := checkStoreOnDisk(t, f.dataDir, f.walDir); pairs != len(items) {
		t.Errorf("%d blob+sidecar pairs on disk, %d files listed", pairs, len(items))
	}
	if got := f.usedBytes(); got != used {
		t.Errorf("used_bytes %d, want %d (sum of %d files)", got, used, len(items))
	}
}

// adoptUnknown accepts a listed file the client never got a 201 for only when it is an
// in-flight upload whose whole content was sent, with matching metadata.
func adoptUnknown(t *testing.T, ledger *crashLedger, it procFileMeta) bool {
	a := ledger.unknown[it.OriginalFilename]
	if a == nil {
		t.Errorf("unexpected file after restart: %s", it.canonical())
		return false
	}
	if msg := checkUploadMeta(a, it); msg != "" {
		t.Errorf("in-flight upload %s committed wrongly: %s", a.name, msg)
		return false
	}
	t.Logf("in-flight upload %s (%d bytes) was committed before the kill; its reply was lost", a.name, a.size)
	ledger.committed[it.FileID] = it
	delete(ledger.unknown, it.OriginalFilename)
	return true
}

// ---- 2. memory ----

// vmHWM reads the peak resident set size of pid in bytes.
func vmHWM(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 3 && fields[0] == "VmHWM:" && fields[2] == "kB" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM line in /proc/<pid>/status")
}

func (f *seFixture) mustHWM(p *childProcess) int64 {
	f.t.Helper()
	v, err := vmHWM(p.pid)
	if err != nil {
		f.t.Fatalf("read VmHWM of %d: %v", p.pid, err)
	}
	return v
}

// TestProcessUploadMemory: a 512 MiB upload, generated on the fly and streamed,
// raises the server's peak RSS by less than 32 MiB; so does downloading it.
func TestProcessUploadMemory(t *testing.T) {
	const size = 512 << 20
	const bound = 32 << 20
	f := newSEFixture(t)
	p := f.startReady()
	token := f.token("files:read", "files:write")

	warm := f.uploadPattern(token, "warm-up.bin", 1, 1<<20)
	f.checkDownload(token, warm)
	before := f.mustHWM(p)

	big := f.uploadPattern(token, "big.bin", 2, size)
	afterUpload := f.mustHWM(p)
	t.Logf("VmHWM before upload %d KiB, after 512 MiB upload %d KiB (+%d KiB)", before>>10, afterUpload>>10, (afterUpload-before)>>10)
	if afterUpload-before >= bound {
		t.Errorf("a 512 MiB upload raised peak RSS by %d KiB (bound %d KiB)", (afterUpload-before)>>10, bound>>10)
	}

	f.checkDownload(token, big)
	afterDownload := f.mustHWM(p)
	t.Logf("VmHWM after 512 MiB download %d KiB (+%d KiB over the pre-upload peak)", afterDownload>>10, (afterDownload-before)>>10)
	if afterDownload-before >= bound {
		t.Errorf("upload+download of 512 MiB raised peak RSS by %d KiB (bound %d KiB)", (afterDownload-before)>>10, bound>>10)
	}
	if got := f.usedBytes(); got != warm.Size+big.Size {
		t.Errorf("used_bytes %d, want %d", got, warm.Size+big.Size)
	}
}

// ---- 3. graceful shutdown ----

// TestProcessGracefulShutdown: SIGTERM while an upload is stalled mid-body with
// SE_SHUTDOWN_TIMEOUT=2s: exit status 0 within the timeout plus a margin, the
// unfinished upload leaves nothing after restart, the finished one is intact.
func TestProcessGracefulShutdown(t *testing.T) {
	f := newSEFixture(t)
	f.env["SE_SHUTDOWN_TIMEOUT"] = strp("2s")
	p := f.startReady()
	token := f.token("files:read", "files:write")
	done := f.uploadPattern(token, "finished.bin", 7, 300<<10)

	stall := newStallingReader(newPatternReader(8, 4<<20), 1<<20)
	defer stall.Close()
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		status, _, err := f.upload(ctx, token, uploadSpec{filename: "unfinished.bin", contentType: "application/octet-stream", content: stall, size: 4 << 20})
		res <- result{status, err}
	}()
	select {
	case <-stall.halfway:
	case <-time.After(15 * time.Second):
		t.Fatal("the slow upload never got half way")
	}
	if !waitFor(10*time.Second, func() bool { return tempFileWithData(f.dataDir) }) {
		t.Fatal("no temp file of the slow upload appeared")
	}

	sent := time.Now()
	if err := p.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if !p.waitExit(2*time.Second + 8*time.Second) {
		t.Fatalf("no exit within SE_SHUTDOWN_TIMEOUT (2s) + 8s after SIGTERM")
	}
	t.Logf("exited %v after SIGTERM with %v", time.Since(sent).Round(time.Millisecond), p.state)
	if p.state.ExitCode() != 0 {
		t.Errorf("exit status %v, want 0", p.state)
	}
	// The transport's write loop is parked in the stalled body's Read; a real client
	// would give up on its own, this one needs its body closed to return.
	stall.Close()
	select {
	case r := <-res:
		if r.err == nil && r.status == http.StatusCreated {
			t.Errorf("the unfinished upload got 201")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the slow upload's client did not notice the shutdown")
	}
	census, _ := censusDataDir(f.dataDir)
	t.Logf("left on disk by the graceful exit: %d temp files, WAL %v", len(census.temps), dirNames(t, f.walDir))

	f.startReady()
	items := f.listAll(token)
	if len(items) != 1 || items[0].canonical() != done.canonical() {
		t.Fatalf("after restart the store lists %v, want only %s", items, done.canonical())
	}
	f.checkDownload(token, done)
	if pairs := checkStoreOnDisk(t, f.dataDir, f.walDir); pairs != 1 {
		t.Errorf("%d blob+sidecar pairs on disk, want 1", pairs)
	}
	if got := f.usedBytes(); got != done.Size {
		t.Errorf("used_bytes %d, want %d", got, done.Size)
	}
}

// TestProcessClientDisconnect: a client that gives up half way through an upload
// whose Content-Length reserved capacity up front leaves no temp file, no WAL entry
// and no reservation behind in the running process (CONTRACT §11). The reservation is
// observed through behaviour: while the abandoned upload is in flight a second upload
// that fits only without it gets 507, afterwards the same upload gets 201.
func TestProcessClientDisconnect(t *testing.T) {
	const capacity, abandonedSize, probeSize = 100 << 20, 60 << 20, 45 << 20
	f := newSEFixture(t)
	f.env["SE_MAX_FILE_SIZE"] = strp(strconv.Itoa(64 << 20))
	f.env["SE_MAX_CAPACITY"] = strp(strconv.Itoa(capacity))
	f.startReady()
	token := f.token("files:read", "files:write")
	kept := f.uploadPattern(token, "kept.bin", 21, 100<<10)

	abandoned := newStallingReader(newPatternReader(22, abandonedSize), 2<<20)
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _, err := f.upload(ctx, token, uploadSpec{filename: "abandoned.bin", contentType: "application/octet-stream", content: abandoned, size: abandonedSize})
		res <- err
	}()
	select {
	case <-abandoned.halfway:
	case <-time.After(15 * time.Second):
		t.Fatal("the upload never got under way")
	}
	if !waitFor(10*time.Second, func() bool { return tempFileWithData(f.dataDir) }) {
		t.Fatal("no temp file of the upload appeared")
	}
	f.expectStorageFull(token, probeSize)

	abandoned.Close()
	select {
	case err := <-res:
		if err == nil {
			t.Error("the abandoned upload completed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not give up")
	}
	clean := waitFor(10*time.Second, func() bool {
		c, err := censusDataDir(f.dataDir)
		return err == nil && len(c.temps) == 0 && len(dirNames(t, f.walDir)) == 0
	})
	if !clean {
		c, _ := censusDataDir(f.dataDir)
		t.Fatalf("10s after the client left: temps %v, WAL %v", c.temps, dirNames(t, f.walDir))
	}
	probe := f.uploadPattern(token, "fits-again.bin", 23, probeSize)
	if pairs := checkStoreOnDisk(t, f.dataDir, f.walDir); pairs != 2 {
		t.Errorf("%d blob+sidecar pairs on disk, want 2", pairs)
	}
	if got := f.usedBytes(); got != kept.Size+probe.Size {
		t.Errorf("used_bytes %d, want %d", got, kept.Size+probe.Size)
	}
}

// expectStorageFull announces an upload of size bytes and expects 507 STORAGE_FULL
// before the body is read: the body never gets past its multipart header.
func (f *seFixture) expectStorageFull(token string, size int64) {
	f.t.Helper()
	body := newStallingReader(strings.NewReader(""), 0)
	defer body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	status, data, err := f.upload(ctx, token, uploadSpec{filename: "probe.bin", contentType: "application/octet-stream", content: body, size: size})
	var eb procErrorBody
	json.Unmarshal(data, &eb)
	if err != nil || status != http.StatusInsufficientStorage || eb.Error.Code != "STORAGE_FULL" {
		f.t.Fatalf("upload of %d bytes while capacity is reserved: status %d err %v body %s, want 507 STORAGE_FULL", size, status, err, data)
	}
}

// ---- 4. configuration errors ----

// TestProcessConfigErrors: a bad value stops `se serve` with status 2 and exactly one
// stderr line naming the variable; weakening auth is a bad value.
func TestProcessConfigErrors(t *testing.T) {
	f := newSEFixture(t)
	dirAsCert := t.TempDir()
	garbage := filepath.Join(t.TempDir(), "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, variable string
		value          *string
	}{
		{"missing storage id", "SE_STORAGE_ID", nil},
		{"port not a number", "SE_PORT", strp("abc")},
		{"plain http JWKS on a public host", "SE_JWKS_URL", strp("http://example.com/jwks")},
		{"missing JWKS CA bundle", "SE_JWKS_CA_CERT", strp("/nonexistent/ca.pem")},
		{"TLS cert does not exist", "SE_TLS_CERT", strp(filepath.Join(t.TempDir(), "missing.crt"))},
		{"TLS cert is a directory", "SE_TLS_CERT", strp(dirAsCert)},
		{"TLS cert is not PEM", "SE_TLS_CERT", strp(garbage)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.env = map[string]*string{tc.variable: tc.value}
			_, stderr, code := runChild(t, []string{"serve"}, f.serveEnv(), f.root, 15*time.Second)
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr %q", code, stderr)
			}
			if len(lines) != 1 || !strings.Contains(lines[0], tc.variable) {
				t.Errorf("stderr %q: want exactly one line naming %s", stderr, tc.variable)
			}
		})
	}
	if entries, err := os.ReadDir(f.walDir); err == nil && len(entries) > 0 {
		t.Errorf("a refused start left WAL entries: %d", len(entries))
	}
}

// ---- 5. JWKS down at start ----

// TestProcessJWKSDownAtStart: the SE starts and is ready while its JWKS endpoint does
// not answer, rejects valid tokens (401) while it knows no key, and accepts them once
// the JWKS server comes up on that port, without a restart.
func TestProcessJWKSDownAtStart(t *testing.T) {
	f := newSEFixture(t)
	jwksPort := freePort(t)
	f.jwksURL = fmt.Sprintf("http://127.0.0.1:%d/jwks.json", jwksPort)
	f.env["SE_DEPHEALTH_CHECK_INTERVAL"] = strp("1s")
	p := f.start()
	ready := f.waitReady(p)
	t.Logf("ready with JWKS down: status %q", ready.Status)
	token := f.token("files:read")

	var eb procErrorBody
	f.mustGetJSON("/api/v1/files", token, http.StatusUnauthorized, &eb)
	if eb.Error.Code != "UNAUTHORIZED" {
		t.Errorf("error code %q, want UNAUTHORIZED", eb.Error.Code)
	}

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", jwksPort))
	if err != nil {
		t.Fatalf("the JWKS port %d was taken meanwhile: %v", jwksPort, err)
	}
	jwks := httptest.NewUnstartedServer(jwksHandler(jwksJSON(f.kid, &f.signKey.PublicKey)))
	jwks.Listener.Close()
	jwks.Listener = ln
	jwks.Start()
	defer jwks.Close()

	accepted := waitFor(20*time.Second, func() bool {
		status, _ := f.getJSON("/api/v1/files", token, nil)
		return status == http.StatusOK
	})
	if !accepted {
		t.Fatal("a valid token was still refused 20s after the JWKS server came up")
	}
	back := waitFor(20*time.Second, func() bool {
		var rb readyBody
		status, _ := f.getJSON("/health/ready", "", &rb)
		return status == http.StatusOK && rb.Status == "ok"
	})
	if !back {
		t.Error("readiness did not return to ok after the JWKS server came up")
	}
}

// ---- 6. TLS reload ----

// leafSerial opens a new TLS connection trusting roots and returns the server's leaf
// serial number.
func leafSerial(addr string, roots *x509.CertPool) (*big.Int, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// TestProcessTLSReload: replacing SE_TLS_CERT/SE_TLS_KEY on disk makes new handshakes
// present the new certificate without a restart.
func TestProcessTLSReload(t *testing.T) {
	f := newSEFixture(t)
	p := f.startReady()
	addr := "127.0.0.1:" + strconv.Itoa(f.port)
	oldCert := f.cert
	roots := x509.NewCertPool()
	roots.AddCert(oldCert)
	serial, err := leafSerial(addr, roots)
	if err != nil || serial.Cmp(oldCert.SerialNumber) != 0 {
		t.Fatalf("initial handshake: serial %v err %v, want %v", serial, err, oldCert.SerialNumber)
	}

	newCert := writeSelfSignedCert(t, f.certPath, f.keyPath)
	if newCert.SerialNumber.Cmp(oldCert.SerialNumber) == 0 {
		t.Fatal("the new certificate has the old serial")
	}
	roots.AddCert(newCert)
	var last *big.Int
	reloaded := waitFor(10*time.Second, func() bool {
		last, err = leafSerial(addr, roots)
		return err == nil && last.Cmp(newCert.SerialNumber) == 0
	})
	if !reloaded {
		t.Fatalf("new handshakes still present serial %v (err %v) 10s after the files changed; want %v", last, err, newCert.SerialNumber)
	}
	onlyNew := newTLSClient(newCert)
	defer onlyNew.CloseIdleConnections()
	resp, err := onlyNew.Get(f.baseURL() + "/health/live")
	if err != nil {
		t.Fatalf("a client trusting only the new certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/health/live %d", resp.StatusCode)
	}
	if p.exited() {
		t.Errorf("the SE exited: %v", p.state)
	}
}

// ---- 7. dev, token, healthcheck, version ----

// readTokenLine reads lines from r until "export TOKEN=…" (at most 30 s) and keeps
// draining r afterwards so the child never blocks on a full pipe.
func readTokenLine(t *testing.T, r io.Reader) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() {
			if tok, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export TOKEN="); ok && !sent {
				found <- tok
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case tok, ok := <-found:
		if !ok || tok == "" {
			t.Fatal("`se dev` closed stdout without printing a token")
		}
		return tok
	case <-time.After(30 * time.Second):
		t.Fatal("`se dev` printed no token within 30s")
	}
	return ""
}

// jwtPayload decodes the claims of a compact JWS without verifying it.
func jwtPayload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments", token, len(parts))
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(data, &claims); err != nil {
		t.Fatalf("token payload: %v", err)
	}
	return claims
}

// TestProcessDevAndToken: `se dev` runs with no configuration and prints a working
// token; `se token` mints a narrower one; dev refuses a real SE_JWKS_URL;
// `se healthcheck` and `se version` behave for scripts.
func TestProcessDevAndToken(t *testing.T) {
	cwd := t.TempDir()
	port := freePort(t)
	env := childEnv(map[string]*string{"SE_PORT": strp(strconv.Itoa(port)), "SE_BIND_ADDR": strp("127.0.0.1")})
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdoutR.Close()
	dev := startChild(t, "se-dev", []string{"dev"}, env, cwd, stdoutW)
	stdoutW.Close()
	devToken := readTokenLine(t, stdoutR)

	certPEM, err := os.ReadFile(filepath.Join(cwd, "se-dev", "tls.crt"))
	if err != nil {
		t.Fatalf("dev certificate: %v", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("se-dev/tls.crt holds no PEM block")
	}
	devCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("dev certificate: %v", err)
	}
	f := &seFixture{t: t, port: port, client: newTLSClient(devCert)}
	defer f.client.CloseIdleConnections()
	f.waitReady(dev)
	f.mustGetJSON("/api/v1/files", devToken, http.StatusOK, nil)

	stdout, stderr, code := runChild(t, []string{"token", "--sub", "alice", "--scopes", "files:read"}, env, cwd, 15*time.Second)
	if code != 0 || strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
		t.Fatalf("se token: exit %d stdout %q stderr %q; want one line", code, stdout, stderr)
	}
	alice := strings.TrimSuffix(stdout, "\n")
	claims := jwtPayload(t, alice)
	if claims["sub"] != "alice" || fmt.Sprint(claims["scopes"]) != "[files:read]" {
		t.Errorf("se token claims %v", claims)
	}
	var list procFileList
	f.mustGetJSON("/api/v1/files", alice, http.StatusOK, &list)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, err := f.upload(ctx, alice, uploadSpec{filename: "a.txt", contentType: "text/plain", content: strings.NewReader("hi"), size: 2})
	if err != nil || status != http.StatusForbidden {
		t.Errorf("upload with a files:read token: status %d err %v body %s, want 403", status, err, body)
	}
	status, body, err = f.upload(ctx, devToken, uploadSpec{filename: "a.txt", contentType: "text/plain", content: strings.NewReader("hi"), size: 2})
	if err != nil || status != http.StatusCreated {
		t.Errorf("upload with the dev token: status %d err %v body %s, want 201", status, err, body)
	}

	refuseDir := t.TempDir()
	refuseEnv := childEnv(map[string]*string{"SE_JWKS_URL": strp("https://x.example/jwks"), "SE_PORT": strp(strconv.Itoa(freePort(t)))})
	_, stderr, code = runChild(t, []string{"dev"}, refuseEnv, refuseDir, 15*time.Second)
	if code != 2 || !strings.Contains(stderr, "SE_JWKS_URL") {
		t.Errorf("se dev with SE_JWKS_URL set: exit %d stderr %q, want 2 naming SE_JWKS_URL", code, stderr)
	}
	if names := dirNames(t, refuseDir); len(names) != 0 {
		t.Errorf("a refused se dev created %v", names)
	}

	_, stderr, code = runChild(t, []string{"healthcheck"}, env, cwd, 15*time.Second)
	if code != 0 {
		t.Errorf("healthcheck against the dev server: exit %d stderr %q", code, stderr)
	}
	deadEnv := childEnv(map[string]*string{"SE_PORT": strp(strconv.Itoa(freePort(t))), "SE_BIND_ADDR": strp("127.0.0.1")})
	if _, _, code = runChild(t, []string{"healthcheck"}, deadEnv, cwd, 15*time.Second); code == 0 {
		t.Error("healthcheck against a port with nothing listening exited 0")
	}
	stdout, _, code = runChild(t, []string{"version"}, env, cwd, 15*time.Second)
	if code != 0 || strings.Count(stdout, "\n") != 1 || strings.TrimSpace(stdout) == "" {
		t.Errorf("se version: exit %d stdout %q, want one non-empty line", code, stdout)
	}

	if err := dev.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !dev.waitExit(15 * time.Second) {
		t.Fatal("se dev did not stop within 15s of SIGTERM")
	}
	if dev.state.ExitCode() != 0 {
		t.Errorf("se dev exit %v, want 0", dev.state)
	}
}

// ---- 8. readiness never writes ----

// TestProcessReadinessNoWrites: the tests run as root, so a read-only data dir proves
// nothing; instead inotify watches SE_DATA_DIR, its shard dirs and SE_WAL_DIR while
// /health/ready is polled across more than one background probe interval (5 s), and
// not a single create/modify/delete/rename/attribute event may occur.
func TestProcessReadinessNoWrites(t *testing.T) {
	f := newSEFixture(t)
	f.startReady()
	token := f.token("files:read", "files:write")
	f.uploadPattern(token, "one.bin", 11, 10<<10)
	f.uploadPattern(token, "two.bin", 12, 0)

	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	defer unix.Close(fd)
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	watched := map[int]string{}
	for _, root := range []string{f.dataDir, f.walDir} {
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				wd, werr := unix.InotifyAddWatch(fd, path, mask)
				if werr != nil {
					t.Fatalf("watch %s: %v", path, werr)
				}
				watched[wd] = path
			}
			return nil
		})
	}
	for end := time.Now().Add(5500 * time.Millisecond); time.Now().Before(end); {
		var rb readyBody
		f.mustGetJSON("/health/ready", "", http.StatusOK, &rb)
		time.Sleep(25 * time.Millisecond)
	}
	buf := make([]byte, 64<<10)
	n, err := unix.Read(fd, buf)
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read inotify: %v", err)
	}
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		// struct inotify_event { int32 wd; uint32 mask, cookie, len; char name[len]; }
		wd := int(int32(binary.NativeEndian.Uint32(buf[off:])))
		evMask := binary.NativeEndian.Uint32(buf[off+4:])
		nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
		nameStart := off + unix.SizeofInotifyEvent
		name := strings.TrimRight(string(buf[nameStart:min(nameStart+nameLen, n)]), "\x00")
		t.Errorf("write activity while only readiness was polled: mask %#x on %s/%s", evMask, watched[wd], name)
		off = nameStart + nameLen
	}
}
