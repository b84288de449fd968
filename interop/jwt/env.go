package main

// env.go: the world the SE binary runs in: a self-signed TLS certificate for 127.0.0.1,
// the JWKS served over plain http on 127.0.0.1 (the SE allows http only to loopback JWKS
// hosts), temp data/WAL directories, and the SE processes themselves.
//
// Invariants:
//   - everything listens on 127.0.0.1 and lives under one temp directory;
//   - an SE gets exactly the environment written here (PATH aside), so SE_* variables of the
//     caller's shell cannot change what is checked;
//   - every wait is bounded; an SE is stopped by its PID (SIGTERM, SIGKILL after a grace
//     period) and, on Linux, also dies with this program (Pdeathsig).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	readyTimeout = 30 * time.Second
	stopGrace    = 10 * time.Second
)

// tlsFiles are the PEM files the SE serves with, and the pool that trusts them.
type tlsFiles struct {
	certFile, keyFile string
	roots             *x509.CertPool
}

// writeTLSPair creates a self-signed P-256 certificate for 127.0.0.1 under dir.
func writeTLSPair(dir string) (tlsFiles, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tlsFiles{}, fmt.Errorf("TLS key: %w", err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "jwt-interop 127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tlsFiles{}, fmt.Errorf("TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tlsFiles{}, fmt.Errorf("TLS key encoding: %w", err)
	}
	files := tlsFiles{certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	if err := os.WriteFile(files.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tlsFiles{}, fmt.Errorf("write certificate: %w", err)
	}
	if err := os.WriteFile(files.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tlsFiles{}, fmt.Errorf("write TLS key: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tlsFiles{}, fmt.Errorf("parse certificate: %w", err)
	}
	files.roots = x509.NewCertPool()
	files.roots.AddCert(cert)
	return files, nil
}

// jwksServer serves one fixed JWKS document on http://127.0.0.1:port/jwks.json.
type jwksServer struct {
	url string
	srv *http.Server
}

func startJWKS(document []byte) (*jwksServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("JWKS listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(document)
	})
	s := &jwksServer{
		url: "http://" + ln.Addr().String() + "/jwks.json",
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *jwksServer) close() { _ = s.srv.Close() }

// freePort asks the kernel for a free loopback port. Another process could take it before
// the SE binds it; the SE would then fail to start and the run reports that.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// seProcess is one running `se serve`.
type seProcess struct {
	name    string
	baseURL string // https://127.0.0.1:port
	logPath string // stdout and stderr of the process
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // valid once exited is closed
}

// startSE starts `bin serve` with its own data and WAL directories under dir/name.
func startSE(bin, dir, name string, tls tlsFiles, jwksURL string, cfg seConfig) (*seProcess, error) {
	home := filepath.Join(dir, name)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"SE_STORAGE_ID=interop-" + name,
		"SE_DATA_DIR=" + filepath.Join(home, "data"),
		"SE_WAL_DIR=" + filepath.Join(home, "wal"),
		"SE_TLS_CERT=" + tls.certFile,
		"SE_TLS_KEY=" + tls.keyFile,
		"SE_JWKS_URL=" + jwksURL,
		"SE_PORT=" + strconv.Itoa(port),
		"SE_BIND_ADDR=127.0.0.1",
		"SE_LOG_LEVEL=warn",
	}
	if cfg.issuer != "" {
		env = append(env, "SE_JWT_ISSUER="+cfg.issuer)
	}
	if cfg.audience != "" {
		env = append(env, "SE_JWT_AUDIENCE="+cfg.audience)
	}
	logPath := filepath.Join(home, "se.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Dir = home
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	p := &seProcess{
		name:    name,
		baseURL: "https://127.0.0.1:" + strconv.Itoa(port),
		logPath: logPath,
		cmd:     cmd,
		exited:  make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// waitReady polls /health/ready until it answers 200, the process exits, or readyTimeout.
func (p *seProcess) waitReady(ctx context.Context, client *http.Client) error {
	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	lastStatus := "no answer"
	for {
		if status, err := getStatus(readyCtx, client, p.baseURL+"/health/ready", ""); err == nil {
			if status == http.StatusOK {
				return nil
			}
			lastStatus = strconv.Itoa(status)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before ready (%v); log:\n%s", p.name, p.waitErr, p.logTail(20))
		case <-readyCtx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("%s: waiting for /health/ready: %w", p.name, ctx.Err())
			}
			return fmt.Errorf("%s not ready after %s (last /health/ready: %s); log:\n%s", p.name, readyTimeout, lastStatus, p.logTail(20))
		case <-ticker.C:
		}
	}
}

// stop sends SIGTERM to the process by PID and escalates to SIGKILL after stopGrace.
func (p *seProcess) stop() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s had already exited: %v", p.name, p.waitErr)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: SIGTERM: %w", p.name, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopGrace):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("%s ignored SIGTERM for %s, killed", p.name, stopGrace)
}

// logTail returns the last n lines of the process log, for error reports.
func (p *seProcess) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// newSEClient trusts only the run's certificate and speaks HTTP/1.1.
func newSEClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		},
	}
}

// getStatus sends GET url (with a bearer token when token is not empty) and returns the
// status code; the body is drained and discarded.
func getStatus(ctx context.Context, client *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}
