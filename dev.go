// dev.go — `se dev` and `se token`: a working SE with no setup, for trying the API.
//
// `se dev` keeps everything under ./se-dev in the current directory:
//
//	se-dev/data, se-dev/wal          the store
//	se-dev/tls.crt, se-dev/tls.key   a self-signed certificate for localhost/127.0.0.1/::1
//	se-dev/jwt-signing-key.pem       an RSA-2048 key (PKCS#8) that signs dev tokens
//
// It serves the JWKS of that key to itself on a loopback-only plain-http listener
// (config accepts http JWKS URLs only for loopback hosts) and prints a token and a curl
// line. It refuses to run when SE_JWKS_URL is set, so a production environment can
// never be switched to the dev key by accident.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	devDirName      = "se-dev"
	devKeyFile      = "jwt-signing-key.pem"
	devCertFile     = "tls.crt"
	devCertKeyFile  = "tls.key"
	devTokenTTL     = 24 * time.Hour
	devStorageID    = "se-dev"
	devDefaultScope = "files:read,files:write,storage:read,storage:write"
)

func runDev(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", devDirName, "directory for the dev data, keys and certificate")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if v, ok := os.LookupEnv("SE_JWKS_URL"); ok && v != "" {
		fmt.Fprintln(stderr, "se dev: refusing to run because SE_JWKS_URL is set; dev mode signs its own tokens and must never stand in for a real deployment")
		return exitConfig
	}
	key, err := devPrepare(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "se dev: %v\n", err)
		return 1
	}
	jwksURL, stopJWKS, err := serveDevJWKS(key)
	if err != nil {
		fmt.Fprintf(stderr, "se dev: %v\n", err)
		return 1
	}
	defer stopJWKS()
	cfg, err := loadConfig(devEnv(*dir, jwksURL))
	if err != nil {
		fmt.Fprintf(stderr, "se dev: configuration error: %v\n", err)
		return exitConfig
	}
	token, err := mintDevToken(key, "dev", strings.Split(devDefaultScope, ","), devTokenTTL)
	if err != nil {
		fmt.Fprintf(stderr, "se dev: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ready := make(chan string, 1)
	go func() {
		addr := <-ready
		printDevBanner(stdout, *dir, addr, cfg.Port, token)
	}()
	if err := serve(ctx, cfg, cfg.Logger(stderr), ready); err != nil {
		fmt.Fprintf(stderr, "se dev: %v\n", err)
		return 1
	}
	return 0
}

// devEnv supplies dev defaults for every variable the environment leaves unset (so
// SE_PORT, SE_MODE, SE_LOG_LEVEL … still work); TLS and JWKS are always dev's own.
func devEnv(dir, jwksURL string) func(string) (string, bool) {
	fixed := map[string]string{
		"SE_TLS_CERT": filepath.Join(dir, devCertFile),
		"SE_TLS_KEY":  filepath.Join(dir, devCertKeyFile),
		"SE_JWKS_URL": jwksURL,
	}
	defaults := map[string]string{
		"SE_STORAGE_ID": devStorageID,
		"SE_DATA_DIR":   filepath.Join(dir, "data"),
		"SE_WAL_DIR":    filepath.Join(dir, "wal"),
		"SE_LOG_FORMAT": "text",
		"SE_BIND_ADDR":  "127.0.0.1", // a dev server with a printed token stays on this machine
	}
	return func(k string) (string, bool) {
		if v, ok := fixed[k]; ok {
			return v, true
		}
		if v, ok := os.LookupEnv(k); ok && v != "" {
			return v, true
		}
		v, ok := defaults[k]
		return v, ok
	}
}

func printDevBanner(w io.Writer, dir, addr string, port int, token string) {
	fmt.Fprintf(w, `
Storage Element dev mode — data in %[1]s/data, WAL in %[1]s/wal (listening on %[2]s)
A token valid for 24h with every scope:

export TOKEN=%[3]s

Try it:
  curl --cacert %[1]s/tls.crt -H "Authorization: Bearer $TOKEN" -F file=@README.md https://localhost:%[4]d/api/v1/files/upload
  curl --cacert %[1]s/tls.crt -H "Authorization: Bearer $TOKEN" https://localhost:%[4]d/api/v1/files

More tokens: go run . token --sub alice --scopes files:read --ttl 1h
`, dir, addr, token, port)
}

// devPrepare creates the dev directory, certificate and signing key if missing.
func devPrepare(dir string) (*rsa.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := ensureDevCert(dir); err != nil {
		return nil, err
	}
	return loadOrCreateDevKey(dir)
}

func ensureDevCert(dir string) error {
	certPath, keyPath := filepath.Join(dir, devCertFile), filepath.Join(dir, devCertKeyFile)
	if _, err := os.Stat(certPath); err == nil {
		return nil
	}
	certPEM, keyPEM, err := selfSignedCert([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write TLS key: %w", err)
	}
	return os.WriteFile(certPath, certPEM, 0o644)
}

// selfSignedCert makes a one-year ECDSA P-256 serving certificate.
func selfSignedCert(dnsNames []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "storage-element dev"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func loadOrCreateDevKey(dir string) (*rsa.PrivateKey, error) {
	path := filepath.Join(dir, devKeyFile)
	if data, err := os.ReadFile(path); err == nil {
		return parseDevKey(data)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return key, nil
}

func parseDevKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("signing key file holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse signing key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("signing key is not RSA")
	}
	return rk, nil
}

// devKeyID derives a stable kid from the public modulus.
func devKeyID(key *rsa.PrivateKey) string {
	sum := sha256.Sum256(key.N.Bytes())
	return "dev-" + hex.EncodeToString(sum[:6])
}

// serveDevJWKS serves the dev key's JWKS on a loopback port and returns its URL.
func serveDevJWKS(key *rsa.PrivateKey) (string, func(), error) {
	doc, err := jwksDocument(map[string]*rsa.PublicKey{devKeyID(key): &key.PublicKey})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen for dev JWKS: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/jwks.json", func() { srv.Close() }, nil
}

func mintDevToken(key *rsa.PrivateKey, sub string, scopes []string, ttl time.Duration) (string, error) {
	now := time.Now()
	return signRS256(key, devKeyID(key), map[string]any{
		"sub": sub, "scopes": scopes, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
}

// runToken prints a token signed by the key `se dev` created in the current directory.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", devDirName, "the directory `se dev` uses")
	sub := fs.String("sub", "dev", "subject (sub claim)")
	scopes := fs.String("scopes", devDefaultScope, "comma-separated scopes")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *sub == "" || *ttl <= 0 {
		fmt.Fprintln(stderr, "se token: --sub must be non-empty and --ttl positive")
		return exitConfig
	}
	data, err := os.ReadFile(filepath.Join(*dir, devKeyFile))
	if err != nil {
		fmt.Fprintf(stderr, "se token: no dev signing key (run `se dev` in this directory first): %v\n", err)
		return 1
	}
	key, err := parseDevKey(data)
	if err != nil {
		fmt.Fprintf(stderr, "se token: %v\n", err)
		return 1
	}
	var list []string
	for _, s := range strings.Split(*scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	token, err := mintDevToken(key, *sub, list, *ttl)
	if err != nil {
		fmt.Fprintf(stderr, "se token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, token)
	return 0
}
