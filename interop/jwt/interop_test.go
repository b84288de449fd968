package main

// Tests that need no SE binary: the hostile tokens are broken exactly where their names
// say (and nowhere else), the served JWKS round-trips, and the reference computation agrees
// with every declaration of the table, so a wrong table entry fails here before it can
// hide or invent a disagreement with the SE.

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	sharedOnce sync.Once
	sharedKeys *keySet
	sharedErr  error
)

// testKeys generates the key set once for the whole package: the 4096-bit key is slow.
func testKeys(t *testing.T) *keySet {
	t.Helper()
	sharedOnce.Do(func() { sharedKeys, sharedErr = newKeySet() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedKeys
}

// testTable builds the table and the published keys for now.
func testTable(t *testing.T, now time.Time) (map[string]tokenCase, []tokenCase, map[string]*rsa.PublicKey) {
	t.Helper()
	ks := testKeys(t)
	cases, err := buildCases(ks, now)
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]tokenCase, len(cases))
	for _, c := range cases {
		if _, dup := byName[c.name]; dup {
			t.Fatalf("case name %q used twice", c.name)
		}
		byName[c.name] = c
	}
	document, err := ks.jwksDocument()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := publishedKeys(document)
	if err != nil {
		t.Fatal(err)
	}
	return byName, cases, keys
}

func mustCase(t *testing.T, byName map[string]tokenCase, name string) tokenCase {
	t.Helper()
	c, ok := byName[name]
	if !ok {
		t.Fatalf("no case %q", name)
	}
	return c
}

func mustSplit(t *testing.T, token string) jws {
	t.Helper()
	parts, err := splitJWS(token)
	if err != nil {
		t.Fatalf("split %.40q: %v", token, err)
	}
	return parts
}

func decodeJSON(t *testing.T, segment string) map[string]any {
	t.Helper()
	raw, err := b64.DecodeString(segment)
	if err != nil {
		t.Fatalf("decode segment: %v", err)
	}
	var object map[string]any
	if err := json.Unmarshal(raw, &object); err != nil {
		t.Fatalf("segment is not a JSON object: %v", err)
	}
	return object
}

func TestReferenceMatchesEveryDeclaration(t *testing.T) {
	now := time.Now()
	_, cases, keys := testTable(t, now)
	rules := 0
	for _, c := range cases {
		r := evaluate(c, keys, configOf(c.target), now)
		if r.problem != "" {
			t.Errorf("%s: %s", c.name, r.problem)
		}
		if c.rule != "" {
			rules++
		}
	}
	// Every documented rule is exercised by at least one case.
	for _, rule := range []string{ruleMaxSize, ruleMinRSABits, ruleSubject, ruleIssuedAt, ruleTyp,
		ruleNoCrit, ruleCanonicalB64, ruleDateRange, ruleClaimTypes} {
		found := false
		for _, c := range cases {
			found = found || c.rule == rule
		}
		if !found {
			t.Errorf("no case exercises rule %q", rule)
		}
	}
	if rules != 13 {
		t.Errorf("%d cases rely on a documented rule, want 13", rules)
	}
}

func TestCheckExpectationCatchesWrongDeclarations(t *testing.T) {
	now := time.Now()
	byName, _, keys := testTable(t, now)
	for _, tc := range []struct {
		name   string
		mutate func(*tokenCase)
	}{
		{"sub missing", func(c *tokenCase) { c.rule = "" }},             // difference not declared
		{"sub missing", func(c *tokenCase) { c.rule = ruleIssuedAt }},   // wrong rule declared
		{"unknown kid", func(c *tokenCase) { c.rule = ruleMinRSABits }}, // rule on a token the library rejects
		{"valid RS256, 2048-bit key", func(c *tokenCase) { c.wantAccept = false }},
		{"expired 1h ago", func(c *tokenCase) { c.wantAccept = true }},
	} {
		c := mustCase(t, byName, tc.name)
		tc.mutate(&c)
		if r := evaluate(c, keys, configOf(c.target), now); r.problem == "" {
			t.Errorf("%s with a wrong declaration %+v: no problem reported", tc.name, c)
		}
	}
}

func TestSurgeryTouchesOnlyWhatItSays(t *testing.T) {
	byName, _, keys := testTable(t, time.Now())
	valid := mustCase(t, byName, "valid RS256, 2048-bit key").token
	v := mustSplit(t, valid)
	validSignature, err := b64.DecodeString(v.signature)
	if err != nil {
		t.Fatal(err)
	}
	if len(validSignature) != 256 {
		t.Fatalf("valid signature is %d bytes, want 256", len(validSignature))
	}

	tp := mustSplit(t, mustCase(t, byName, "tampered payload").token)
	if tp.header != v.header || tp.signature != v.signature || tp.payload == v.payload {
		t.Error("tampered payload: only the payload may differ from the valid token")
	}
	if sub := decodeJSON(t, tp.payload)["sub"]; sub != "admin" {
		t.Errorf("tampered payload: sub = %v, want admin", sub)
	}
	th := mustSplit(t, mustCase(t, byName, "tampered header").token)
	if th.payload != v.payload || th.signature != v.signature || th.header == v.header {
		t.Error("tampered header: only the header may differ from the valid token")
	}
	if alg := decodeJSON(t, th.header)["alg"]; alg != "RS256" {
		t.Errorf("tampered header: alg = %v, want RS256 (only the signature may fail)", alg)
	}

	tr := mustSplit(t, mustCase(t, byName, "truncated signature (255 of 256 bytes)").token)
	truncated, err := b64.Strict().DecodeString(tr.signature)
	if err != nil || !bytes.Equal(truncated, validSignature[:255]) {
		t.Errorf("truncated signature: want the first 255 bytes, canonically encoded (err %v)", err)
	}

	loose := mustSplit(t, mustCase(t, byName, "signature with non-zero trailing bits").token)
	if loose.signature == v.signature {
		t.Error("non-canonical signature: text equals the valid one")
	}
	lenient, err := b64.DecodeString(loose.signature)
	if err != nil || !bytes.Equal(lenient, validSignature) {
		t.Errorf("non-canonical signature: lenient decoding must give the valid bytes (err %v)", err)
	}
	if _, err := b64.Strict().DecodeString(loose.signature); err == nil {
		t.Error("non-canonical signature: strict decoding accepted it")
	}

	padded := mustCase(t, byName, "padded signature (==)").token
	if padded != valid+"==" {
		t.Error("padded signature: want the valid token plus ==")
	}
	if _, err := base64.URLEncoding.DecodeString(mustSplit(t, padded).signature); err != nil {
		t.Errorf("padded signature: not correctly padded base64url: %v", err)
	}

	// The padded header is signed over its padded text: a parser that allows padding accepts
	// it, so padding is the only thing wrong with it.
	paddedHeader := mustCase(t, byName, "padded header, signed as sent").token
	if !strings.Contains(mustSplit(t, paddedHeader).header, "=") {
		t.Error("padded header: no '=' in the header segment")
	}
	if err := parseWith(paddedHeader, keys, jwt.WithPaddingAllowed()); err != nil {
		t.Errorf("padded header: rejected even with padding allowed: %v", err)
	}

	if n := strings.Count(mustCase(t, byName, "2 segments").token, "."); n != 1 {
		t.Errorf("2 segments: %d dots", n)
	}
	if n := strings.Count(mustCase(t, byName, "4 segments").token, "."); n != 3 {
		t.Errorf("4 segments: %d dots", n)
	}
	empty := mustSplit(t, mustCase(t, byName, "empty signature").token)
	if empty.signature != "" || empty.header != v.header || empty.payload != v.payload {
		t.Error("empty signature: want the valid header and payload with an empty signature")
	}
	for name, space := range map[string]string{"space inside the payload": " ", "tab inside the payload": "\t"} {
		token := mustCase(t, byName, name).token
		if strings.Count(token, space) != 1 || strings.Replace(token, space, "", 1) != valid {
			t.Errorf("%s: want the valid token with exactly one %q inserted", name, space)
		}
		if !strings.Contains(mustSplit(t, token).payload, space) {
			t.Errorf("%s: the whitespace is not inside the payload", name)
		}
	}
}

func TestHostileHeaders(t *testing.T) {
	byName, _, keys := testTable(t, time.Now())
	for _, tc := range []struct {
		name   string
		header map[string]any // members that must be present with these values
	}{
		{"alg none", map[string]any{"alg": "none", "kid": kid2048}},
		{"HS256, RSA public key PEM as secret", map[string]any{"alg": "HS256", "kid": kid2048}},
		{"RS384", map[string]any{"alg": "RS384"}},
		{"RS512", map[string]any{"alg": "RS512"}},
		{"PS256", map[string]any{"alg": "PS256"}},
		{"ES256, EC key not in the JWKS", map[string]any{"alg": "ES256", "kid": kidEC}},
		{`typ "JOSE"`, map[string]any{"alg": "RS256", "typ": "JOSE"}},
		{`typ "at+jwt" (RFC 9068)`, map[string]any{"alg": "RS256", "typ": "at+jwt"}},
		{"kid not a string", map[string]any{"alg": "RS256", "kid": float64(2048)}},
		{"kid of the 1024-bit key (in the JWKS)", map[string]any{"alg": "RS256", "kid": kid1024}},
	} {
		header := decodeJSON(t, mustSplit(t, mustCase(t, byName, tc.name).token).header)
		for member, want := range tc.header {
			if got := header[member]; got != want {
				t.Errorf("%s: header %s = %v, want %v", tc.name, member, got, want)
			}
		}
	}
	crit := decodeJSON(t, mustSplit(t, mustCase(t, byName, `crit ["exp"] header`).token).header)
	if fmt.Sprint(crit["crit"]) != "[exp]" {
		t.Errorf("crit header: crit = %v", crit["crit"])
	}
	if none := mustSplit(t, mustCase(t, byName, "alg none").token); none.signature != "" {
		t.Error("alg none: signature segment not empty")
	}
	if _, published := keys[kidEC]; published {
		t.Error("the EC kid is in the JWKS")
	}
	if bits := keys[kid1024].N.BitLen(); bits != 1024 {
		t.Errorf("weak key has %d bits, want 1024", bits)
	}

	// The HS256 token is the classic key-confusion forgery: it verifies as HMAC with the PEM.
	hs := mustCase(t, byName, "HS256, RSA public key PEM as secret").token
	secret := pemOf(t, &testKeys(t).rsa2048.PublicKey)
	_, err := jwt.Parse(hs, func(*jwt.Token) (any, error) { return secret, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Errorf("HS256 token does not verify with the PEM as HMAC secret: %v", err)
	}
}

func TestSizedTokens(t *testing.T) {
	byName, _, keys := testTable(t, time.Now())
	for name, size := range map[string]int{
		"exactly 16384 bytes":         seMaxTokenBytes,
		"16385 bytes, validly signed": seMaxTokenBytes + 1,
	} {
		token := mustCase(t, byName, name).token
		if len(token) != size {
			t.Errorf("%s: %d bytes", name, len(token))
		}
		if err := parseWith(token, keys); err != nil {
			t.Errorf("%s: not a valid token for the library: %v", name, err)
		}
	}
	ks := testKeys(t)
	for size := 1000; size < 1008; size++ {
		token, err := sizedToken(jwt.SigningMethodRS256, ks.rsa2048, header("RS256", kid2048), map[string]any{"sub": "s"}, size)
		if err != nil || len(token) != size {
			t.Errorf("sizedToken(%d): %d bytes, err %v", size, len(token), err)
		}
	}
}

func TestPublishedKeysRoundTrip(t *testing.T) {
	ks := testKeys(t)
	document, err := ks.jwksDocument()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := publishedKeys(document)
	if err != nil {
		t.Fatal(err)
	}
	for kid, want := range map[string]*rsa.PublicKey{
		kid2048: &ks.rsa2048.PublicKey,
		kid4096: &ks.rsa4096.PublicKey,
		kid1024: &ks.rsa1024.PublicKey,
	} {
		if got := keys[kid]; got == nil || !got.Equal(want) {
			t.Errorf("kid %s does not round-trip", kid)
		}
	}
	if len(keys) != 3 {
		t.Errorf("%d keys published, want 3", len(keys))
	}
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(document, &doc); err != nil {
		t.Fatal(err)
	}
	for _, entry := range doc.Keys {
		if entry["kty"] != "RSA" || entry["use"] != "sig" || entry["alg"] != "RS256" || entry["e"] != "AQAB" {
			t.Errorf("JWK %v: want kty RSA, use sig, alg RS256, e AQAB", entry)
		}
	}
}

func TestNonCanonicalTail(t *testing.T) {
	for _, raw := range [][]byte{{0xff}, {0xff, 0xfe}, {1, 2, 3, 4}} {
		segment := b64.EncodeToString(raw)
		loose, err := nonCanonicalTail(segment)
		if err != nil {
			t.Fatalf("%q: %v", segment, err)
		}
		if got, err := b64.DecodeString(loose); err != nil || !bytes.Equal(got, raw) {
			t.Errorf("%q -> %q: lenient decode %x, %v", segment, loose, got, err)
		}
		if _, err := b64.Strict().DecodeString(loose); err == nil {
			t.Errorf("%q -> %q: strict decode accepted it", segment, loose)
		}
	}
	if _, err := nonCanonicalTail("AAAA"); err == nil {
		t.Error("a full quantum has no unused bits, want an error")
	}
}

// parseWith runs the reference options (no iss/aud) plus extra ones.
func parseWith(token string, keys map[string]*rsa.PublicKey, extra ...jwt.ParserOption) error {
	options := append([]jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithLeeway(seLeeway), jwt.WithExpirationRequired(),
	}, extra...)
	_, err := jwt.Parse(token, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if key := keys[kid]; key != nil {
			return key, nil
		}
		return nil, fmt.Errorf("no key %q", kid)
	}, options...)
	return err
}

func pemOf(t *testing.T, key *rsa.PublicKey) []byte {
	t.Helper()
	encoded, err := publicKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return encoded
}
