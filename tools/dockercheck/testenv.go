// Test fixtures for running the image's file tree under chroot (tools/ci/check-docker.sh):
//
//	dockercheck testenv -dir DIR [-max 10m]
//	    writes DIR/tls.crt, DIR/tls.key  self-signed ECDSA P-256 for 127.0.0.1 and localhost
//	           DIR/jwks.json             the public half of a fresh RSA-2048 key (kid "check")
//	           DIR/token                 an RS256 JWT by that key: sub check-docker,
//	                                     scopes [files:read], valid for one hour
//	    then serves DIR/jwks.json over plain HTTP on 127.0.0.1 (allowed for loopback only,
//	    CONTRACT §11), writes the port to DIR/jwks.port and runs until SIGTERM or -max.
//
//	dockercheck freeport
//	    prints a TCP port that was free on 127.0.0.1 a moment ago.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

const checkKeyID = "check"

func runTestEnv(args []string) error {
	fs := flag.NewFlagSet("testenv", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for the fixtures (required)")
	maxLife := fs.Duration("max", 10*time.Minute, "stop serving after this long")
	_ = fs.Parse(args)
	if *dir == "" {
		return errors.New("-dir is required")
	}
	if err := writeTLSPair(*dir); err != nil {
		return err
	}
	if err := writeJWKSAndToken(*dir); err != nil {
		return err
	}
	return serveJWKS(*dir, *maxLife)
}

func runFreePort() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	return nil
}

func writeTLSPair(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "storage-element check"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal tls key: %w", err)
	}
	if err := writePEM(filepath.Join(dir, "tls.crt"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "tls.key"), "PRIVATE KEY", keyDER, 0o600)
}

func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func writeJWKSAndToken(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("rsa key: %w", err)
	}
	jwks := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": checkKeyID,
		"n": b64url(key.N.Bytes()),
		"e": b64url(big.NewInt(int64(key.E)).Bytes()),
	}}}
	js, err := json.MarshalIndent(jwks, "", "  ")
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), js, 0o644); err != nil {
		return fmt.Errorf("write jwks: %w", err)
	}
	tok, err := signToken(key, time.Now())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok), 0o600); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	return nil
}

func signToken(key *rsa.PrivateKey, now time.Time) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": checkKeyID})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"sub": "check-docker", "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(), "scopes": []string{"files:read"},
	})
	if err != nil {
		return "", err
	}
	signing := b64url(header) + "." + b64url(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signing + "." + b64url(sig), nil
}

func serveJWKS(dir string, maxLife time.Duration) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		http.ServeFile(w, r, filepath.Join(dir, "jwks.json"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// The port file appears only once the listener is up, so the script can wait for it.
	if err := os.WriteFile(filepath.Join(dir, "jwks.port"), []byte(port+"\n"), 0o644); err != nil {
		return fmt.Errorf("write port: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, maxLife)
	defer cancel()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve jwks: %w", err)
	}
	return nil
}
