package main

// Tests for jwt.go. Hostile tokens are crafted byte by byte and always go through
// tokenVerifier.Verify, against jwtFakeLookup (a fixed key map) or, in jwks_test.go, a real
// TLS JWKS server. Each reject case names the reason it must fail for, so a token that fails
// for some other, accidental reason (say, a bad signature in an "expired" case) fails the test.

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwtTestNow is the verifier's clock in every table test.
var jwtTestNow = time.Unix(1_700_000_000, 0).UTC()

type jwtTestKeySet struct {
	a, b *rsa.PrivateKey // 2048 bits
	weak *rsa.PrivateKey // 1024 bits: below the floor
}

// jwtTestKeys are generated once per test binary: RSA generation is slow under -race.
var jwtTestKeys = sync.OnceValue(func() jwtTestKeySet {
	generate := func(bits int) *rsa.PrivateKey {
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(fmt.Sprintf("generate %d-bit RSA key: %v", bits, err))
		}
		return key
	}
	return jwtTestKeySet{a: generate(2048), b: generate(2048), weak: generate(1024)}
})

// jwtFakeLookup is a fixed key map with the publicKeyLookup kid rules, and no size filter, so
// the tests see Verify's own key-size floor.
type jwtFakeLookup struct {
	keys  map[string]*rsa.PublicKey
	calls atomic.Int64
}

func (f *jwtFakeLookup) PublicKey(_ context.Context, kid string) (*rsa.PublicKey, error) {
	f.calls.Add(1)
	if kid == "" {
		for _, key := range f.keys {
			if len(f.keys) == 1 {
				return key, nil
			}
		}
		return nil, errJWKSUnknownKid
	}
	if key, ok := f.keys[kid]; ok {
		return key, nil
	}
	return nil, errJWKSUnknownKid
}

func jwtTestLookup() *jwtFakeLookup {
	k := jwtTestKeys()
	return &jwtFakeLookup{keys: map[string]*rsa.PublicKey{"a": &k.a.PublicKey, "b": &k.b.PublicKey, "weak": &k.weak.PublicKey}}
}

func jwtTestVerifier(keys publicKeyLookup) *tokenVerifier {
	return &tokenVerifier{Keys: keys, Now: func() time.Time { return jwtTestNow }}
}

// jwtTestClaims returns valid claims: sub, exp in an hour, iat now, scopes [files:read];
// mods then change them (set a member to jwtDelete to remove it).
func jwtTestClaims(mods map[string]any) map[string]any {
	claims := map[string]any{
		"sub":    "user-1",
		"exp":    jwtTestNow.Add(time.Hour).Unix(),
		"iat":    jwtTestNow.Unix(),
		"scopes": []string{"files:read"},
	}
	for name, value := range mods {
		if value == jwtDelete {
			delete(claims, name)
			continue
		}
		claims[name] = value
	}
	return claims
}

type jwtDeleteMarker struct{}

var jwtDelete = jwtDeleteMarker{}

func jwtTestJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(data)
}

func jwtTestEncode(data []byte) string { return base64.RawURLEncoding.EncodeToString(data) }

// jwtTestCraft assembles a compact token from raw header and payload JSON text and a signer
// that sees the exact signing input.
func jwtTestCraft(headerJSON, payloadJSON string, sign func(signingInput string) []byte) string {
	signingInput := jwtTestEncode([]byte(headerJSON)) + "." + jwtTestEncode([]byte(payloadJSON))
	return signingInput + "." + jwtTestEncode(sign(signingInput))
}

func jwtSignerRS256(key *rsa.PrivateKey) func(string) []byte {
	return func(signingInput string) []byte {
		digest := sha256.Sum256([]byte(signingInput))
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func jwtSignerRS384(key *rsa.PrivateKey) func(string) []byte {
	return func(signingInput string) []byte {
		digest := sha512.Sum384([]byte(signingInput))
		sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA384, digest[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func jwtSignerPS256(key *rsa.PrivateKey) func(string) []byte {
	return func(signingInput string) []byte {
		digest := sha256.Sum256([]byte(signingInput))
		sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA256, digest[:], nil)
		if err != nil {
			panic(err)
		}
		return sig
	}
}

// jwtSignerHS256 is the classic key-confusion attack: HMAC keyed with public key bytes.
func jwtSignerHS256(secret []byte) func(string) []byte {
	return func(signingInput string) []byte {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signingInput))
		return mac.Sum(nil)
	}
}

func jwtPublicKeyPEM(key *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwtHeader is the JSON text of a header with these members.
func jwtHeader(members map[string]any) string { return jwtTestJSON(members) }

// jwtValid is a good RS256 token by key a, kid "a", with mods applied to jwtTestClaims.
func jwtValid(mods map[string]any) string {
	return jwtTestCraft(jwtHeader(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "a"}),
		jwtTestJSON(jwtTestClaims(mods)), jwtSignerRS256(jwtTestKeys().a))
}

// jwtSegments splits a token for tampering.
func jwtSegments(token string) []string { return strings.Split(token, ".") }

func jwtNoSignature(string) []byte { return nil }

type jwtVerifyCase struct {
	name   string
	token  func() string
	setup  func(v *tokenVerifier) // optional verifier changes
	reason string                 // "" = must verify; else a substring the error must hold
	check  func(t *testing.T, c *Claims)
}

func TestVerifyRejectsHostileHeaders(t *testing.T) {
	k := jwtTestKeys()
	rsHeader := jwtHeader(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "a"})
	claims := jwtTestJSON(jwtTestClaims(nil))
	withAlg := func(alg any) string { return jwtHeader(map[string]any{"alg": alg, "typ": "JWT", "kid": "a"}) }
	der, err := x509.MarshalPKIXPublicKey(&k.a.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jwtRunVerifyCases(t, []jwtVerifyCase{
		{name: "alg none, empty signature", reason: `alg "none" not allowed`,
			token: func() string { return jwtTestCraft(withAlg("none"), claims, jwtNoSignature) }},
		{name: "alg none with a real RS256 signature", reason: `alg "none" not allowed`,
			token: func() string { return jwtTestCraft(withAlg("none"), claims, jwtSignerRS256(k.a)) }},
		{name: "alg NONE", reason: `alg "NONE" not allowed`,
			token: func() string { return jwtTestCraft(withAlg("NONE"), claims, jwtNoSignature) }},
		{name: "HS256 keyed with the PEM public key", reason: `alg "HS256" not allowed`,
			token: func() string {
				return jwtTestCraft(withAlg("HS256"), claims, jwtSignerHS256(jwtPublicKeyPEM(&k.a.PublicKey)))
			}},
		{name: "HS256 keyed with the DER public key", reason: `alg "HS256" not allowed`,
			token: func() string { return jwtTestCraft(withAlg("HS256"), claims, jwtSignerHS256(der)) }},
		{name: "RS384 properly signed", reason: `alg "RS384" not allowed`,
			token: func() string { return jwtTestCraft(withAlg("RS384"), claims, jwtSignerRS384(k.a)) }},
		{name: "PS256 properly signed", reason: `alg "PS256" not allowed`,
			token: func() string { return jwtTestCraft(withAlg("PS256"), claims, jwtSignerPS256(k.a)) }},
		{name: "ES256", reason: `alg "ES256" not allowed`,
			token: func() string { return jwtTestCraft(withAlg("ES256"), claims, jwtSignerRS256(k.a)) }},
		{name: "alg in lower case", reason: `alg "rs256" not allowed`,
			token: func() string { return jwtTestCraft(withAlg("rs256"), claims, jwtSignerRS256(k.a)) }},
		{name: "alg not a string", reason: "alg is not a string",
			token: func() string { return jwtTestCraft(withAlg([]string{"RS256"}), claims, jwtSignerRS256(k.a)) }},
		{name: "alg missing", reason: "alg missing",
			token: func() string { return jwtTestCraft(`{"typ":"JWT","kid":"a"}`, claims, jwtSignerRS256(k.a)) }},
		{name: "alg matched case-insensitively is not alg", reason: "alg missing",
			token: func() string { return jwtTestCraft(`{"ALG":"RS256","kid":"a"}`, claims, jwtSignerRS256(k.a)) }},
		{name: "RS256 header over an RS384 signature", reason: "bad signature",
			token: func() string { return jwtTestCraft(rsHeader, claims, jwtSignerRS384(k.a)) }},
		{name: "RS256 header over a PSS signature", reason: "bad signature",
			token: func() string { return jwtTestCraft(rsHeader, claims, jwtSignerPS256(k.a)) }},
		{name: "crit with a registered name", reason: "crit not supported",
			token: func() string {
				return jwtTestCraft(`{"alg":"RS256","kid":"a","crit":["exp"],"exp":1}`, claims, jwtSignerRS256(k.a))
			}},
		{name: "crit empty", reason: "crit not supported",
			token: func() string { return jwtTestCraft(`{"alg":"RS256","kid":"a","crit":[]}`, claims, jwtSignerRS256(k.a)) }},
		{name: "unencoded payload option b64 false", reason: "crit not supported",
			token: func() string {
				return jwtTestCraft(`{"alg":"RS256","kid":"a","b64":false,"crit":["b64"]}`, claims, jwtSignerRS256(k.a))
			}},
		{name: "typ of another token type", reason: `typ "dpop+jwt" not allowed`,
			token: func() string {
				return jwtTestCraft(`{"alg":"RS256","kid":"a","typ":"dpop+jwt"}`, claims, jwtSignerRS256(k.a))
			}},
		{name: "typ not a string", reason: "typ is not a string",
			token: func() string {
				return jwtTestCraft(`{"alg":"RS256","kid":"a","typ":null}`, claims, jwtSignerRS256(k.a))
			}},
		{name: "typ lower case accepted",
			token: func() string {
				return jwtTestCraft(`{"alg":"RS256","kid":"a","typ":"jwt"}`, claims, jwtSignerRS256(k.a))
			}},
		{name: "typ at+jwt (RFC 9068 access token) accepted",
			token: func() string {
				return jwtTestCraft(`{"alg":"RS256","kid":"a","typ":"at+JWT"}`, claims, jwtSignerRS256(k.a))
			}},
		{name: "typ absent accepted",
			token: func() string { return jwtTestCraft(`{"alg":"RS256","kid":"a"}`, claims, jwtSignerRS256(k.a)) }},
		{name: "unknown kid", reason: `key for kid "zzz"`,
			token: func() string { return jwtTestCraft(`{"alg":"RS256","kid":"zzz"}`, claims, jwtSignerRS256(k.a)) }},
		{name: "kid not a string", reason: "kid is not a string",
			token: func() string { return jwtTestCraft(`{"alg":"RS256","kid":1}`, claims, jwtSignerRS256(k.a)) }},
		{name: "no kid while several keys", reason: `key for kid ""`,
			token: func() string { return jwtTestCraft(`{"alg":"RS256"}`, claims, jwtSignerRS256(k.a)) }},
		{name: "no kid with a single key",
			setup: func(v *tokenVerifier) {
				v.Keys = &jwtFakeLookup{keys: map[string]*rsa.PublicKey{"only": &k.a.PublicKey}}
			},
			token: func() string { return jwtTestCraft(`{"alg":"RS256"}`, claims, jwtSignerRS256(k.a)) }},
		{name: "1024-bit key", reason: "RSA key of 1024 bits not accepted",
			token: func() string { return jwtTestCraft(`{"alg":"RS256","kid":"weak"}`, claims, jwtSignerRS256(k.weak)) }},
		{name: "signed by another key under kid a", reason: "bad signature",
			token: func() string { return jwtTestCraft(rsHeader, claims, jwtSignerRS256(k.b)) }},
		{name: "header not an object", reason: "header: not a JSON object",
			token: func() string { return jwtTestCraft(`["RS256"]`, claims, jwtSignerRS256(k.a)) }},
		{name: "header null", reason: "header: not a JSON object: null",
			token: func() string { return jwtTestCraft(`null`, claims, jwtSignerRS256(k.a)) }},
		{name: "header with trailing data", reason: "header: not a JSON object",
			token: func() string { return jwtTestCraft(rsHeader+`{}`, claims, jwtSignerRS256(k.a)) }},
		{name: "header empty", reason: "header: not a JSON object",
			token: func() string { return jwtTestCraft(``, claims, jwtSignerRS256(k.a)) }},
	})
}

func TestVerifyRejectsTampering(t *testing.T) {
	k := jwtTestKeys()
	valid := jwtValid(nil)
	parts := jwtSegments(valid)
	join := func(p ...string) string { return strings.Join(p, ".") }
	jwtRunVerifyCases(t, []jwtVerifyCase{
		{name: "untampered", token: func() string { return valid }},
		{name: "header member added", reason: "bad signature",
			token: func() string {
				return join(jwtTestEncode([]byte(`{"alg":"RS256","typ":"JWT","kid":"a","x":1}`)), parts[1], parts[2])
			}},
		{name: "header kid switched to another key", reason: "bad signature",
			token: func() string {
				return join(jwtTestEncode([]byte(`{"alg":"RS256","typ":"JWT","kid":"b"}`)), parts[1], parts[2])
			}},
		{name: "payload sub changed", reason: "bad signature",
			token: func() string {
				return join(parts[0], jwtTestEncode([]byte(jwtTestJSON(jwtTestClaims(map[string]any{"sub": "admin"})))), parts[2])
			}},
		{name: "payload scopes widened", reason: "bad signature",
			token: func() string {
				return join(parts[0], jwtTestEncode([]byte(jwtTestJSON(jwtTestClaims(map[string]any{"scopes": []string{"files:read", "storage:write"}})))), parts[2])
			}},
		{name: "signature bit flipped", reason: "bad signature",
			token: func() string {
				sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
				sig[len(sig)/2] ^= 0x01
				return join(parts[0], parts[1], jwtTestEncode(sig))
			}},
		{name: "signature one byte short", reason: "signature is 255 bytes, key needs 256",
			token: func() string {
				sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
				return join(parts[0], parts[1], jwtTestEncode(sig[1:]))
			}},
		{name: "signature with a leading zero byte", reason: "signature is 257 bytes, key needs 256",
			token: func() string {
				sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
				return join(parts[0], parts[1], jwtTestEncode(append([]byte{0}, sig...)))
			}},
		{name: "signature empty", reason: "signature is 0 bytes",
			token: func() string { return join(parts[0], parts[1], "") }},
		{name: "signature of key b under key a's kid", reason: "bad signature",
			token: func() string { return join(parts[0], parts[1], jwtSegments(jwtSignerTokenB())[2]) }},
		{name: "segments swapped", reason: "header",
			token: func() string { return join(parts[1], parts[0], parts[2]) }},
		{name: "1 segment", reason: "1 segments, want 3", token: func() string { return parts[0] }},
		{name: "empty token", reason: "1 segments, want 3", token: func() string { return "" }},
		{name: "2 segments", reason: "2 segments, want 3", token: func() string { return join(parts[0], parts[1]) }},
		{name: "4 segments", reason: "4 segments, want 3", token: func() string { return valid + "." + parts[2] }},
		{name: "4 segments, trailing dot", reason: "4 segments, want 3", token: func() string { return valid + "." }},
		{name: "5 segments (JWE shape)", reason: "5 segments, want 3",
			token: func() string { return join(parts[0], "", parts[1], parts[2], parts[2]) }},
		{name: "padding on the header", reason: "header: byte",
			token: func() string { return join(parts[0]+"=", parts[1], parts[2]) }},
		{name: "padding on the signature", reason: "signature: byte",
			token: func() string { return join(parts[0], parts[1], parts[2]+"==") }},
		{name: "standard alphabet in the payload", reason: "payload: byte",
			token: func() string {
				return join(parts[0], strings.NewReplacer("-", "+", "_", "/").Replace(parts[1])+"+/", parts[2])
			}},
		{name: "newline inside the signature", reason: "signature: byte",
			token: func() string { return join(parts[0], parts[1], parts[2][:100]+"\n"+parts[2][100:]) }},
		{name: "carriage return inside the header", reason: "header: byte",
			token: func() string { return join(parts[0][:5]+"\r"+parts[0][5:], parts[1], parts[2]) }},
		{name: "space before the token", reason: "header: byte", token: func() string { return " " + valid }},
		{name: "non-canonical trailing bits in the signature", reason: "signature: illegal base64",
			token: func() string { return join(parts[0], parts[1], jwtNonCanonical(t, parts[2])) }},
		{name: "impossible segment length", reason: "payload: illegal base64",
			token: func() string {
				return join(parts[0], parts[1]+strings.Repeat("A", (5-len(parts[1])%4)%4), parts[2])
			}},
		{name: "payload not base64 at all", reason: "payload: byte",
			token: func() string { return join(parts[0], "{\"sub\":\"x\"}", parts[2]) }},
		{name: "signed by the weak key with a strong kid", reason: "signature is 128 bytes",
			token: func() string {
				return jwtTestCraft(`{"alg":"RS256","kid":"a"}`, jwtTestJSON(jwtTestClaims(nil)), jwtSignerRS256(k.weak))
			}},
	})
}

// jwtSignerTokenB is a valid-looking token signed by key b with kid "a".
func jwtSignerTokenB() string {
	return jwtTestCraft(jwtHeader(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "a"}),
		jwtTestJSON(jwtTestClaims(nil)), jwtSignerRS256(jwtTestKeys().b))
}

// jwtNonCanonical re-spells a base64url segment so that it decodes, non-strictly, to the same
// bytes: it sets an unused trailing bit of the last character.
func jwtNonCanonical(t *testing.T, segment string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(segment)%4 == 0 {
		t.Fatalf("segment of length %d has no unused bits", len(segment))
	}
	last := strings.IndexByte(alphabet, segment[len(segment)-1])
	respelled := segment[:len(segment)-1] + string(alphabet[last|1])
	lenient, err := base64.RawURLEncoding.DecodeString(respelled)
	if err != nil {
		t.Fatalf("respelled segment does not decode leniently: %v", err)
	}
	original, _ := base64.RawURLEncoding.DecodeString(segment)
	if string(lenient) != string(original) || respelled == segment {
		t.Fatal("respelling changed the bytes or nothing")
	}
	return respelled
}

func TestVerifyClaims(t *testing.T) {
	k := jwtTestKeys()
	at := func(d time.Duration) int64 { return jwtTestNow.Add(d).Unix() }
	raw := func(payload string) func() string {
		return func() string {
			return jwtTestCraft(`{"alg":"RS256","typ":"JWT","kid":"a"}`, payload, jwtSignerRS256(k.a))
		}
	}
	valid := func(mods map[string]any) func() string { return func() string { return jwtValid(mods) } }
	exp := fmt.Sprint(at(time.Hour))
	jwtRunVerifyCases(t, []jwtVerifyCase{
		{name: "valid claims", token: valid(nil), check: func(t *testing.T, c *Claims) {
			if c.Subject != "user-1" || !slices.Equal(c.Scopes, []string{"files:read"}) {
				t.Errorf("claims = %+v", c)
			}
			if !c.ExpiresAt.Equal(jwtTestNow.Add(time.Hour)) || !c.IssuedAt.Equal(jwtTestNow) || !c.NotBefore.IsZero() {
				t.Errorf("times = exp %v iat %v nbf %v", c.ExpiresAt, c.IssuedAt, c.NotBefore)
			}
			if c.Issuer != "" || c.Audience != nil {
				t.Errorf("iss %q aud %q, want none", c.Issuer, c.Audience)
			}
		}},
		{name: "iat absent is zero", token: valid(map[string]any{"iat": jwtDelete}), check: func(t *testing.T, c *Claims) {
			if !c.IssuedAt.IsZero() {
				t.Errorf("IssuedAt = %v, want zero", c.IssuedAt)
			}
		}},
		{name: "expired", reason: "expired at", token: valid(map[string]any{"exp": at(-time.Hour)})},
		{name: "nbf in the future", reason: "not valid before", token: valid(map[string]any{"nbf": at(time.Hour)})},
		{name: "nbf in the past", token: valid(map[string]any{"nbf": at(-time.Hour)}), check: func(t *testing.T, c *Claims) {
			if !c.NotBefore.Equal(jwtTestNow.Add(-time.Hour)) {
				t.Errorf("NotBefore = %v", c.NotBefore)
			}
		}},
		{name: "iat in the future", reason: "issued in the future", token: valid(map[string]any{"iat": at(time.Hour)})},
		{name: "exp missing", reason: "exp missing", token: valid(map[string]any{"exp": jwtDelete})},
		{name: "exp spelled EXP is not exp", reason: "exp missing",
			token: valid(map[string]any{"exp": jwtDelete, "EXP": at(time.Hour)})},
		{name: "exp a numeric string", reason: "exp is not a number", token: valid(map[string]any{"exp": exp})},
		{name: "exp null", reason: "exp is not a number", token: valid(map[string]any{"exp": nil})},
		{name: "exp true", reason: "exp is not a number", token: valid(map[string]any{"exp": true})},
		{name: "exp an array", reason: "exp is not a number", token: valid(map[string]any{"exp": []int64{at(time.Hour)}})},
		{name: "exp negative", reason: "exp -1 out of range", token: valid(map[string]any{"exp": -1})},
		{name: "exp beyond year 9999", reason: "out of range", token: valid(map[string]any{"exp": 1e300})},
		{name: "exp beyond float64", reason: "payload: exp",
			token: raw(`{"sub":"user-1","exp":1e400}`)},
		{name: "exp fractional", token: raw(`{"sub":"user-1","exp":` + exp + `.5}`), check: func(t *testing.T, c *Claims) {
			if want := jwtTestNow.Add(time.Hour + 500*time.Millisecond); !c.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, want)
			}
		}},
		{name: "exp in exponent form", token: raw(`{"sub":"user-1","exp":1.7000036e9}`)},
		{name: "nbf a string", reason: "nbf is not a number", token: valid(map[string]any{"nbf": "0"})},
		{name: "iat a string", reason: "iat is not a number", token: valid(map[string]any{"iat": "0"})},
		{name: "iat null", reason: "iat is not a number", token: valid(map[string]any{"iat": nil})},
		{name: "sub missing", reason: "sub missing or empty", token: valid(map[string]any{"sub": jwtDelete})},
		{name: "sub empty", reason: "sub missing or empty", token: valid(map[string]any{"sub": ""})},
		{name: "sub a number", reason: "sub is not a string", token: valid(map[string]any{"sub": 42})},
		{name: "sub null", reason: "sub is not a string", token: valid(map[string]any{"sub": nil})},
		{name: "duplicate sub: last wins", token: raw(`{"sub":"first","sub":"second","exp":` + exp + `}`),
			check: func(t *testing.T, c *Claims) {
				if c.Subject != "second" {
					t.Errorf("Subject = %q, want the last duplicate", c.Subject)
				}
			}},
		{name: "payload an array", reason: "payload: not a JSON object", token: raw(`[{"sub":"user-1","exp":` + exp + `}]`)},
		{name: "payload null", reason: "payload: not a JSON object: null", token: raw(`null`)},
		{name: "payload a string", reason: "payload: not a JSON object", token: raw(`"user-1"`)},
		{name: "payload a number", reason: "payload: not a JSON object", token: raw(`42`)},
		{name: "payload truncated JSON", reason: "payload: not a JSON object", token: raw(`{"sub":"user-1"`)},
		{name: "payload with trailing data", reason: "payload: not a JSON object", token: raw(`{"sub":"u","exp":` + exp + `} {}`)},
		{name: "iss not a string", reason: "iss is not a string", token: valid(map[string]any{"iss": 7})},
		{name: "aud a number", reason: "aud: not an array", token: valid(map[string]any{"aud": 7})},
		{name: "aud with a number", reason: "aud: element 1 is not a string", token: valid(map[string]any{"aud": []any{"se", 7}})},
		{name: "aud with a null", reason: "aud: element 0 is not a string", token: valid(map[string]any{"aud": []any{nil}})},
		{name: "scopes a string", reason: "scopes: not an array", token: valid(map[string]any{"scopes": "files:read"})},
		{name: "scopes with a null", reason: "scopes: element 0 is not a string", token: valid(map[string]any{"scopes": []any{nil}})},
		{name: "scope an array", reason: "scope is not a string", token: valid(map[string]any{"scopes": jwtDelete, "scope": []string{"files:read"}})},
	})
}

func TestVerifyScopes(t *testing.T) {
	valid := func(mods map[string]any) func() string { return func() string { return jwtValid(mods) } }
	wantScopes := func(want ...string) func(t *testing.T, c *Claims) {
		return func(t *testing.T, c *Claims) {
			if !slices.Equal(c.Scopes, want) {
				t.Errorf("Scopes = %q, want %q", c.Scopes, want)
			}
			for _, s := range want {
				if !c.HasScope(s) {
					t.Errorf("HasScope(%q) = false", s)
				}
			}
			for _, s := range []string{"files", "FILES:READ", "", "files:read files:write"} {
				if c.HasScope(s) {
					t.Errorf("HasScope(%q) = true", s)
				}
			}
		}
	}
	jwtRunVerifyCases(t, []jwtVerifyCase{
		{name: "scopes array", token: valid(map[string]any{"scopes": []string{"files:read", "files:write"}}),
			check: wantScopes("files:read", "files:write")},
		{name: "OAuth2 scope string", token: valid(map[string]any{"scopes": jwtDelete, "scope": " files:read  files:write storage:write "}),
			check: wantScopes("files:read", "files:write", "storage:write")},
		{name: "both forms: union without duplicates", token: valid(map[string]any{"scopes": []string{"files:read", "", "files:read"}, "scope": "files:read storage:write"}),
			check: wantScopes("files:read", "storage:write")},
		{name: "no scopes at all", token: valid(map[string]any{"scopes": jwtDelete}), check: wantScopes()},
		{name: "empty scope string", token: valid(map[string]any{"scopes": jwtDelete, "scope": ""}), check: wantScopes()},
	})
	var none *Claims
	if none.HasScope("files:read") {
		t.Error("nil Claims has a scope")
	}
}

func TestVerifyIssuerAndAudience(t *testing.T) {
	valid := func(mods map[string]any) func() string { return func() string { return jwtValid(mods) } }
	issuer := func(v *tokenVerifier) { v.Issuer = "https://idp.example" }
	audience := func(v *tokenVerifier) { v.Audience = "storage-element" }
	jwtRunVerifyCases(t, []jwtVerifyCase{
		{name: "iss equal", setup: issuer, token: valid(map[string]any{"iss": "https://idp.example"}),
			check: func(t *testing.T, c *Claims) {
				if c.Issuer != "https://idp.example" {
					t.Errorf("Issuer = %q", c.Issuer)
				}
			}},
		{name: "iss different", setup: issuer, reason: `issuer "https://idp.example/" not accepted`,
			token: valid(map[string]any{"iss": "https://idp.example/"})},
		{name: "iss missing", setup: issuer, reason: `issuer "" not accepted`, token: valid(nil)},
		{name: "iss not checked when unset", token: valid(map[string]any{"iss": "anyone"})},
		{name: "aud string equal", setup: audience, token: valid(map[string]any{"aud": "storage-element"}),
			check: func(t *testing.T, c *Claims) {
				if !slices.Equal(c.Audience, []string{"storage-element"}) {
					t.Errorf("Audience = %q", c.Audience)
				}
			}},
		{name: "aud array containing", setup: audience, token: valid(map[string]any{"aud": []string{"admin", "storage-element"}})},
		{name: "aud string different", setup: audience, reason: `audience does not contain "storage-element"`,
			token: valid(map[string]any{"aud": "storage-element-2"})},
		{name: "aud array not containing", setup: audience, reason: "audience does not contain",
			token: valid(map[string]any{"aud": []string{"admin"}})},
		{name: "aud empty array", setup: audience, reason: "audience does not contain", token: valid(map[string]any{"aud": []string{}})},
		{name: "aud missing", setup: audience, reason: "audience does not contain", token: valid(nil)},
		{name: "aud not checked when unset", token: valid(map[string]any{"aud": "someone-else"})},
	})
}

func TestVerifyLeewayEdges(t *testing.T) {
	valid := func(mods map[string]any) func() string { return func() string { return jwtValid(mods) } }
	at := func(d time.Duration) int64 { return jwtTestNow.Add(d).Unix() }
	leeway5s := func(v *tokenVerifier) { v.Leeway = 5 * time.Second }
	jwtRunVerifyCases(t, []jwtVerifyCase{
		// Default leeway: 30s.
		{name: "exp 29s ago", token: valid(map[string]any{"exp": at(-29 * time.Second)})},
		{name: "exp 30s ago", reason: "expired", token: valid(map[string]any{"exp": at(-30 * time.Second)})},
		{name: "exp 31s ago", reason: "expired", token: valid(map[string]any{"exp": at(-31 * time.Second)})},
		{name: "nbf in 30s", token: valid(map[string]any{"nbf": at(30 * time.Second)})},
		{name: "nbf in 31s", reason: "not valid before", token: valid(map[string]any{"nbf": at(31 * time.Second)})},
		{name: "iat in 30s", token: valid(map[string]any{"iat": at(30 * time.Second)})},
		{name: "iat in 31s", reason: "issued in the future", token: valid(map[string]any{"iat": at(31 * time.Second)})},
		// Configured leeway: 5s.
		{name: "5s: exp 4s ago", setup: leeway5s, token: valid(map[string]any{"exp": at(-4 * time.Second)})},
		{name: "5s: exp 6s ago", setup: leeway5s, reason: "expired", token: valid(map[string]any{"exp": at(-6 * time.Second)})},
		{name: "5s: nbf in 5s", setup: leeway5s, token: valid(map[string]any{"nbf": at(5 * time.Second)})},
		{name: "5s: nbf in 6s", setup: leeway5s, reason: "not valid before", token: valid(map[string]any{"nbf": at(6 * time.Second)})},
		{name: "5s: iat in 6s", setup: leeway5s, reason: "issued in the future", token: valid(map[string]any{"iat": at(6 * time.Second)})},
		{name: "Now nil uses the wall clock", setup: func(v *tokenVerifier) { v.Now = nil },
			reason: "expired", token: valid(nil)}, // jwtTestNow is in 2023, so an hour later is long past
	})
}

func TestVerifyOversizedToken(t *testing.T) {
	k := jwtTestKeys()
	header := func(extra int) string {
		return jwtHeader(map[string]any{"alg": "RS256", "kid": "a", "x": strings.Repeat("x", extra)})
	}
	payload := func(pad int) string {
		return jwtTestJSON(jwtTestClaims(map[string]any{"pad": strings.Repeat("p", pad)}))
	}
	// Find paddings giving a token of exactly maxTokenBytes, and one byte more, without signing
	// each candidate: the signature segment of a 2048-bit key is always 342 characters.
	size := func(extra, pad int) int {
		enc := base64.RawURLEncoding
		return enc.EncodedLen(len(header(extra))) + 1 + enc.EncodedLen(len(payload(pad))) + 1 + enc.EncodedLen(256)
	}
	find := func(want int) (int, int) {
		for extra := 0; extra < 4; extra++ {
			for pad := 11000; pad < 13000; pad++ {
				if size(extra, pad) == want {
					return extra, pad
				}
			}
		}
		t.Fatalf("no padding gives a %d-byte token", want)
		return 0, 0
	}
	atLimit, overLimit := func() string {
		extra, pad := find(maxTokenBytes)
		return jwtTestCraft(header(extra), payload(pad), jwtSignerRS256(k.a))
	}, func() string {
		extra, pad := find(maxTokenBytes + 1)
		return jwtTestCraft(header(extra), payload(pad), jwtSignerRS256(k.a))
	}
	if n := len(atLimit()); n != maxTokenBytes {
		t.Fatalf("at-limit token is %d bytes", n)
	}
	jwtRunVerifyCases(t, []jwtVerifyCase{
		{name: "exactly maxTokenBytes, validly signed", token: atLimit},
		{name: "one byte over, validly signed", reason: "token is 16385 bytes, limit is 16384", token: overLimit},
		{name: "huge garbage is rejected for its size, not its shape", reason: "token is 1048576 bytes",
			token: func() string { return strings.Repeat("!", 1<<20) }},
	})

	// Size is checked before anything else: the key lookup is never reached.
	lookup := jwtTestLookup()
	if _, err := jwtTestVerifier(lookup).Verify(context.Background(), overLimit()); err == nil {
		t.Fatal("oversized token verified")
	}
	if calls := lookup.calls.Load(); calls != 0 {
		t.Errorf("key lookups for an oversized token = %d, want 0", calls)
	}
}

func TestVerifyWithoutKeySource(t *testing.T) {
	_, err := (&tokenVerifier{}).Verify(context.Background(), jwtValid(nil))
	if !errors.Is(err, errInvalidToken) || !strings.Contains(err.Error(), "no key source") {
		t.Fatalf("err = %v", err)
	}
}

func TestSignRS256RoundTrip(t *testing.T) {
	k := jwtTestKeys()
	token, err := signRS256(k.a, "a", jwtTestClaims(map[string]any{"scope": "files:write"}))
	if err != nil {
		t.Fatal(err)
	}
	headerJSON, err := base64.RawURLEncoding.DecodeString(jwtSegments(token)[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(headerJSON), `{"alg":"RS256","kid":"a","typ":"JWT"}`; got != want {
		t.Errorf("header = %s, want %s", got, want)
	}
	claims, err := jwtTestVerifier(jwtTestLookup()).Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !slices.Equal(claims.Scopes, []string{"files:read", "files:write"}) {
		t.Errorf("Scopes = %q", claims.Scopes)
	}

	noKid, err := signRS256(k.a, "", jwtTestClaims(nil))
	if err != nil {
		t.Fatal(err)
	}
	headerJSON, _ = base64.RawURLEncoding.DecodeString(jwtSegments(noKid)[0])
	if got, want := string(headerJSON), `{"alg":"RS256","typ":"JWT"}`; got != want {
		t.Errorf("header without kid = %s, want %s", got, want)
	}
	if _, err := signRS256(nil, "a", jwtTestClaims(nil)); err == nil {
		t.Error("signRS256 without a key succeeded")
	}
	if _, err := signRS256(k.a, "a", nil); err == nil {
		t.Error("signRS256 without claims succeeded")
	}
}

// jwtRunVerifyCases runs each case through Verify with a fresh verifier on jwtTestLookup.
func jwtRunVerifyCases(t *testing.T, cases []jwtVerifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := jwtTestVerifier(jwtTestLookup())
			if tc.setup != nil {
				tc.setup(v)
			}
			claims, err := v.Verify(context.Background(), tc.token())
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if tc.check != nil {
					tc.check(t, claims)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token, claims %+v", claims)
			}
			if claims != nil {
				t.Errorf("claims returned with an error: %+v", claims)
			}
			if !errors.Is(err, errInvalidToken) {
				t.Errorf("error does not wrap errInvalidToken: %v", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error = %q, want it to say %q", err, tc.reason)
			}
		})
	}
}

// FuzzVerify: no input panics, every failure wraps errInvalidToken, and nothing verifies but
// a token we minted ourselves. The last holds because a success needs a valid signature over
// the exact signing input, and the strict base64url decoding gives each byte string one
// spelling only.
func FuzzVerify(f *testing.F) {
	k := jwtTestKeys()
	minted := map[string]bool{}
	mint := func(mods map[string]any) string {
		token := jwtValid(mods)
		minted[token] = true
		return token
	}
	f.Add(mint(nil))
	f.Add(mint(map[string]any{"scope": "files:read files:write", "aud": []string{"a", "b"}, "nbf": jwtTestNow.Unix()}))
	f.Add(mint(map[string]any{"exp": jwtTestNow.Add(-time.Hour).Unix()})) // minted but expired
	f.Add(jwtTestCraft(`{"alg":"none"}`, jwtTestJSON(jwtTestClaims(nil)), jwtNoSignature))
	f.Add(jwtTestCraft(`{"alg":"HS256","kid":"a"}`, jwtTestJSON(jwtTestClaims(nil)), jwtSignerHS256(jwtPublicKeyPEM(&k.a.PublicKey))))
	f.Add(jwtTestCraft(`{"alg":"RS256"}`, `{"sub":"x","exp":1e999}`, jwtSignerRS256(k.a)))
	f.Add("..")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.")

	lookup := &jwtFakeLookup{keys: map[string]*rsa.PublicKey{"a": &k.a.PublicKey}}
	v := jwtTestVerifier(lookup)
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(context.Background(), token)
		if err != nil {
			if claims != nil {
				t.Fatalf("claims returned with error %v", err)
			}
			if !errors.Is(err, errInvalidToken) {
				t.Fatalf("error does not wrap errInvalidToken: %v", err)
			}
			return
		}
		if !minted[token] {
			t.Fatalf("a token we never signed verified: %q", token)
		}
		if claims == nil || claims.Subject == "" || claims.ExpiresAt.IsZero() {
			t.Fatalf("verified claims incomplete: %+v", claims)
		}
	})
}

// BenchmarkVerifyCachedKey measures the hot path: a valid token whose key is already in the
// JWKS client's set (no fetch per call).
func BenchmarkVerifyCachedKey(b *testing.B) {
	k := jwtTestKeys()
	server := newJWKSTestServer(b, map[string]*rsa.PublicKey{"a": &k.a.PublicKey})
	client := server.client(jwksOptions{})
	if _, err := client.PublicKey(context.Background(), "a"); err != nil {
		b.Fatal(err)
	}
	v := &tokenVerifier{Keys: client, Now: func() time.Time { return jwtTestNow }}
	token := jwtValid(map[string]any{"scope": "files:read files:write", "aud": "storage-element"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
	if fetches := server.fetches.Load(); fetches != 1 {
		b.Fatalf("fetches = %d, want 1", fetches)
	}
}
