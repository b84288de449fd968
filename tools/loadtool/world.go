// world.go — the throwaway world one run lives in: a self-signed TLS certificate, an RSA
// signing key whose JWKS is served on loopback over plain http (the SE accepts an http
// JWKS URL only for a loopback host), and RS256 bearer tokens signed with that key.
//
// Token format (RFC 7515 compact JWS, base64url without padding):
//
//	{"alg":"RS256","typ":"JWT","kid":<keyID>} . {"sub","iat","nbf","exp","scopes":[…]} . sig
//
// The signing is written here on crypto/rsa (PKCS #1 v1.5 over SHA-256) so the module
// has no dependencies; it never imports the product.
//
// Invariants: everything listens on 127.0.0.1 only; every file lives under World.Dir.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// keyID is the kid of the one key in the JWKS and in every token.
const keyID = "loadtool-1"

// tokenSubject is the sub of every token; the SE records it as uploaded_by.
const tokenSubject = "loadtool"

// World holds the certificate, keys and JWKS server of one run.
type World struct {
	Dir      string // root of everything the run writes
	CertFile string
	KeyFile  string
	Cert     *x509.Certificate
	RootCAs  *x509.CertPool // trusts Cert only
	SignKey  *rsa.PrivateKey
	JWKSURL  string
	jwksSrv  *http.Server
}

// newWorld creates the certificate, the signing key and starts the JWKS server.
func newWorld(dir string) (*World, error) {
	w := &World{Dir: dir}
	if err := w.writeTLSPair(); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	w.SignKey = key
	if err := w.serveJWKS(); err != nil {
		return nil, err
	}
	return w, nil
}

// writeTLSPair writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// localhost (what `se dev` makes) and trusts only it.
func (w *World) writeTLSPair() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate TLS key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "loadtool"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
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
	w.Cert = cert
	w.RootCAs = x509.NewCertPool()
	w.RootCAs.AddCert(cert)
	return nil
}

func writePEM(path, blockType string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// serverTLSConfig is the TLS configuration of the bare baseline server: the same
// certificate the SE serves, so both handshakes and ciphers are the same.
func (w *World) serverTLSConfig() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(w.CertFile, w.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS pair: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}

// jwksDocument is the RFC 7517 key set holding the public signing key.
func jwksDocument(pub *rsa.PublicKey) []byte {
	doc := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": keyID,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}}
	data, _ := json.Marshal(doc) // maps of strings always marshal
	return data
}

func (w *World) serveJWKS() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for JWKS: %w", err)
	}
	body := jwksDocument(&w.SignKey.PublicKey)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks.json", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(body)
	})
	w.jwksSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = w.jwksSrv.Serve(ln) }()
	w.JWKSURL = "http://" + ln.Addr().String() + "/jwks.json"
	return nil
}

func (w *World) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = w.jwksSrv.Shutdown(ctx)
}

// mintToken returns a token with every scope, valid for ttl.
func (w *World) mintToken(ttl time.Duration) (string, error) {
	now := time.Now()
	return signRS256(w.SignKey, keyID, map[string]any{
		"sub": tokenSubject, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
		"scopes": []string{"files:read", "files:write", "storage:read", "storage:write"},
	})
}

// signRS256 builds a compact JWS: RSASSA-PKCS1-v1_5 with SHA-256 over header.payload.
func signRS256(key *rsa.PrivateKey, kid string, claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		return "", fmt.Errorf("encode JWT header: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode JWT claims: %w", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	return input + "." + enc.EncodeToString(sig), nil
}
