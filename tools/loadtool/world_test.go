package main

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func testWorld(t *testing.T) *World {
	t.Helper()
	w, err := newWorld(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	return w
}

// TestTokenVerifiesAgainstServedJWKS decodes the JWKS the world serves and checks the
// token's signature and claims with it, the way the SE does.
func TestTokenVerifiesAgainstServedJWKS(t *testing.T) {
	w := testWorld(t)
	resp, err := http.Get(w.JWKSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS: %v, %d keys", err, len(set.Keys))
	}
	k := set.Keys[0]
	if k["kid"] != keyID || k["kty"] != "RSA" || k["alg"] != "RS256" {
		t.Fatalf("key %v", k)
	}
	n, _ := base64.RawURLEncoding.DecodeString(k["n"])
	e, _ := base64.RawURLEncoding.DecodeString(k["e"])
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}

	tok, err := w.mintToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("signature does not verify with the served key: %v", err)
	}
	var header map[string]string
	var claims struct {
		Sub    string   `json:"sub"`
		Exp    int64    `json:"exp"`
		Scopes []string `json:"scopes"`
	}
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(h, &header) != nil || json.Unmarshal(p, &claims) != nil {
		t.Fatal("token segments are not JSON")
	}
	if header["alg"] != "RS256" || header["kid"] != keyID {
		t.Fatalf("header %v", header)
	}
	if claims.Sub != tokenSubject || claims.Exp <= time.Now().Unix() ||
		!slices.Contains(claims.Scopes, "files:read") || !slices.Contains(claims.Scopes, "files:write") {
		t.Fatalf("claims %+v", claims)
	}
}

// TestBareServerServesFileOverTLS: the baseline server answers with the file's bytes
// to a client that trusts only the world's certificate.
func TestBareServerServesFileOverTLS(t *testing.T) {
	w := testWorld(t)
	path := filepath.Join(w.Dir, "static.bin")
	content := randomBlock(100_000)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	bare, err := startBareServer(w, path)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.close()
	c := newClient(w.RootCAs, 10*time.Second)
	defer c.CloseIdleConnections()
	resp, err := c.Get(bare.URL + "/static")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || string(got) != string(content) {
		t.Fatalf("status %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}
	if resp.ProtoMajor != 1 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("want HTTP/1.1 over TLS ≥ 1.2, got %s", resp.Proto)
	}
}
