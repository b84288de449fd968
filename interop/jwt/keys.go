package main

// keys.go: the signing keys of one run and the JWKS document that publishes them.
//
// JWKS document served to the SE (RFC 7517 §5), one entry per published RSA key:
//
//	{"keys":[{"kty":"RSA","kid":KID,"use":"sig","alg":"RS256","n":B64URL(N),"e":B64URL(E)}, ...]}
//
// with n and e unpadded base64url, big-endian, no leading zero bytes.
//
// Invariants:
//   - the reference verifier never uses the Go key objects directly: it parses the very
//     bytes served to the SE (publishedKeys), so both sides see the same key set;
//   - the 1024-bit key IS published: the SE must skip it (minimum 2048 bits) while a plain
//     library happily verifies with it, which is one of the documented differences;
//   - unpublishedRSA and ecKey are never in the document (bad-signature and ES256 cases).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// Key ids as they appear in the JWKS and in token headers.
const (
	kid2048 = "interop-rsa-2048"
	kid4096 = "interop-rsa-4096"
	kid1024 = "interop-rsa-1024-weak"
	kidEC   = "interop-ec-p256-unpublished"
	// kidUnknown is in no JWKS at all.
	kidUnknown = "interop-no-such-kid"
)

// keySet holds every private key a run signs with.
type keySet struct {
	rsa2048        *rsa.PrivateKey // published as kid2048
	rsa4096        *rsa.PrivateKey // published as kid4096
	rsa1024        *rsa.PrivateKey // published as kid1024; the SE must ignore it
	unpublishedRSA *rsa.PrivateKey // never published; signs "wrong key" tokens under kid2048
	ecKey          *ecdsa.PrivateKey
}

// newKeySet generates fresh keys. The 4096-bit key takes a moment; callers share one set.
func newKeySet() (*keySet, error) {
	var ks keySet
	var err error
	for _, k := range []struct {
		bits int
		dst  **rsa.PrivateKey
	}{
		{2048, &ks.rsa2048},
		{4096, &ks.rsa4096},
		{1024, &ks.rsa1024},
		{2048, &ks.unpublishedRSA},
	} {
		if *k.dst, err = rsa.GenerateKey(rand.Reader, k.bits); err != nil {
			return nil, fmt.Errorf("generate %d-bit RSA key: %w", k.bits, err)
		}
	}
	if ks.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	return &ks, nil
}

// jwk is one entry of the served document.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// jwksDocument renders the document the JWKS server serves.
func (ks *keySet) jwksDocument() ([]byte, error) {
	published := []struct {
		kid string
		key *rsa.PublicKey
	}{
		{kid2048, &ks.rsa2048.PublicKey},
		{kid4096, &ks.rsa4096.PublicKey},
		{kid1024, &ks.rsa1024.PublicKey},
	}
	doc := struct {
		Keys []jwk `json:"keys"`
	}{}
	for _, p := range published {
		doc.Keys = append(doc.Keys, jwk{
			Kty: "RSA",
			Kid: p.kid,
			Use: "sig",
			Alg: "RS256",
			N:   base64.RawURLEncoding.EncodeToString(p.key.N.Bytes()),
			E:   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(p.key.E)).Bytes()),
		})
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render JWKS: %w", err)
	}
	return body, nil
}

// publishedKeys parses a JWKS document into RSA public keys by kid, taking every RSA entry
// whatever its size: this is what a plain library user's key function would do.
func publishedKeys(document []byte) (map[string]*rsa.PublicKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(document, &doc); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	keys := make(map[string]*rsa.PublicKey, len(doc.Keys))
	for i, entry := range doc.Keys {
		if entry.Kty != "RSA" {
			continue
		}
		n, err := base64.RawURLEncoding.DecodeString(entry.N)
		if err != nil {
			return nil, fmt.Errorf("parse JWKS: key %d: n: %w", i, err)
		}
		e, err := base64.RawURLEncoding.DecodeString(entry.E)
		if err != nil {
			return nil, fmt.Errorf("parse JWKS: key %d: e: %w", i, err)
		}
		exponent := new(big.Int).SetBytes(e)
		if !exponent.IsInt64() || exponent.Int64() > 1<<31-1 {
			return nil, fmt.Errorf("parse JWKS: key %d: exponent too large", i)
		}
		keys[entry.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exponent.Int64())}
	}
	if len(keys) == 0 {
		return nil, errors.New("parse JWKS: no RSA key")
	}
	return keys, nil
}
