// env.go builds the world the SE binary runs in during the check: a
// self-signed TLS certificate, an RSA signing key published through a JWKS
// served over plain HTTP on 127.0.0.1 (the SE accepts http only for loopback
// JWKS URLs), temp data/WAL directories, and the SE process itself.
//
// Invariants:
//   - Everything listens on 127.0.0.1 only and lives under one temp dir.
//   - The SE gets a clean environment: inherited SE_* variables are dropped
//     so the operator's shell cannot change what the check tests.
//   - Every wait is bounded; the SE is stopped by its PID (SIGTERM, then
//     SIGKILL after a grace period), and dies with the tool (Pdeathsig).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits the check configures so 413 and 507 can be provoked with small
// files: capacity holds three max-size files.
const (
	maxFileSize = 4096
	maxCapacity = 3 * maxFileSize
)

// keyID is the kid of the signing key in the JWKS and in every token.
const keyID = "openapicheck-1"

// world holds what every SE instance of one run shares.
type world struct {
	Dir       string // root temp dir
	CertFile  string
	KeyFile   string
	RootCAs   *x509.CertPool
	SignKey   *rsa.PrivateKey
	JWKSURL   string
	jwksSrv   *http.Server
	jwksHits  atomic.Int64
	otherKey  *rsa.PrivateKey // a key the JWKS does not know (bad signature)
	instances int
}

// newWorld creates the temp dir, certificate, keys and the JWKS server.
func newWorld(dir string) (*world, error) {
	w := &world{Dir: dir}
	if err := w.writeTLSPair(); err != nil {
		return nil, err
	}
	var err error
	if w.SignKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	if w.otherKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, fmt.Errorf("generate second key: %w", err)
	}
	if err := w.serveJWKS(); err != nil {
		return nil, err
	}
	return w, nil
}

// writeTLSPair writes a self-signed ECDSA certificate for 127.0.0.1 and
// localhost, and remembers it as the only trusted root.
func (w *world) writeTLSPair() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate TLS key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "openapicheck"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal TLS key: %w", err)
	}
	w.CertFile = filepath.Join(w.Dir, "tls.crt")
	w.KeyFile = filepath.Join(w.Dir, "tls.key")
	if err := writePEM(w.CertFile, "CERTIFICATE", der); err != nil {
		return err
	}
	if err := writePEM(w.KeyFile, "PRIVATE KEY", keyDER); err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse certificate: %w", err)
	}
	w.RootCAs = x509.NewCertPool()
	w.RootCAs.AddCert(cert)
	return nil
}

// writePEM writes one PEM block, readable by the owner only.
func writePEM(path, blockType string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// jwksDocument is the RFC 7517 key set holding the signing key.
func (w *world) jwksDocument() []byte {
	pub := w.SignKey.PublicKey
	doc := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": keyID,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}}
	data, _ := json.Marshal(doc) // a map of strings always marshals
	return data
}

// serveJWKS publishes the key set on a loopback port.
func (w *world) serveJWKS() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for JWKS: %w", err)
	}
	body := w.jwksDocument()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks.json", func(rw http.ResponseWriter, _ *http.Request) {
		w.jwksHits.Add(1)
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(body)
	})
	w.jwksSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = w.jwksSrv.Serve(ln) }()
	w.JWKSURL = "http://" + ln.Addr().String() + "/jwks.json"
	return nil
}

// close stops the JWKS server.
func (w *world) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = w.jwksSrv.Shutdown(ctx)
}

// seProcess is one running SE.
type seProcess struct {
	Name    string
	BaseURL string // https://127.0.0.1:port
	DataDir string
	WALDir  string
	LogFile string
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
}

// freePort asks the kernel for an unused loopback port. The port is closed
// before the SE binds it; a collision shows up as an early exit.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startSE runs `bin serve` in its own data and WAL dirs with the given mode.
func (w *world) startSE(bin, name, mode string) (*seProcess, error) {
	w.instances++
	root := filepath.Join(w.Dir, fmt.Sprintf("%d-%s", w.instances, name))
	p := &seProcess{
		Name: name, DataDir: filepath.Join(root, "data"), WALDir: filepath.Join(root, "wal"),
		LogFile: filepath.Join(root, "se.log"), exited: make(chan struct{}),
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", root, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.BaseURL = "https://127.0.0.1:" + strconv.Itoa(port)
	logFile, err := os.Create(p.LogFile)
	if err != nil {
		return nil, fmt.Errorf("create SE log: %w", err)
	}
	p.cmd = exec.Command(bin, "serve")
	p.cmd.Env = append(cleanEnv(),
		"SE_STORAGE_ID=openapicheck-"+name,
		"SE_DATA_DIR="+p.DataDir,
		"SE_WAL_DIR="+p.WALDir,
		"SE_MODE="+mode,
		"SE_TLS_CERT="+w.CertFile,
		"SE_TLS_KEY="+w.KeyFile,
		"SE_JWKS_URL="+w.JWKSURL,
		"SE_PORT="+strconv.Itoa(port),
		"SE_BIND_ADDR=127.0.0.1",
		"SE_MAX_FILE_SIZE="+strconv.Itoa(maxFileSize),
		"SE_MAX_CAPACITY="+strconv.Itoa(maxCapacity),
		"SE_SHUTDOWN_TIMEOUT=5s",
		"SE_LOG_FORMAT=text",
	)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// cleanEnv is the tool's environment without SE_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SE_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls GET /health/ready until 200, the process exits, or the
// deadline passes.
func (p *seProcess) waitReady(ctx context.Context, client *http.Client, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastErr := errors.New("no answer yet")
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.BaseURL+"/health/ready", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastErr = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			lastErr = err
		}
		select {
		case <-p.exited:
			return fmt.Errorf("SE %s exited before ready (%v); log:\n%s", p.Name, p.exitErr, p.logTail(40))
		case <-ctx.Done():
			return fmt.Errorf("SE %s not ready within %s (last: %v); log:\n%s", p.Name, limit, lastErr, p.logTail(40))
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the SE's PID, waits up to grace, then SIGKILLs it.
// It fails unless the SE exited cleanly (status 0) within the grace period.
func (p *seProcess) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return fmt.Errorf("SE %s had already exited: %v", p.Name, p.exitErr)
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.exitErr != nil {
			return fmt.Errorf("SE %s (pid %d) exited with %v after SIGTERM, want a clean drain",
				p.Name, p.cmd.Process.Pid, p.exitErr)
		}
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("SE %s (pid %d) ignored SIGTERM for %s; killed", p.Name, p.cmd.Process.Pid, grace)
	}
}

// logTail returns the last n lines of the SE's log.
func (p *seProcess) logTail(n int) string {
	data, err := os.ReadFile(p.LogFile)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// httpClient trusts only the check's certificate and never follows
// redirects, so every response is the SE's own.
func (w *world) httpClient() *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: w.RootCAs, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 4,
			DisableCompression:  true, // keep Content-Length and bytes as the SE sent them
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
