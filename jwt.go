package main

// Bearer-token verification (CONTRACT §3), written on crypto/rsa only.
//
// Token format: JWS compact serialization (RFC 7515 §7.1)
//
//	BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)
//
// with base64url WITHOUT padding (RFC 7515 §2). The signature is RSASSA-PKCS1-v1_5 with
// SHA-256 ("RS256", RFC 7518 §3.3) over the ASCII bytes of `header "." payload`.
//
// Invariants enforced by Verify, in this order (cheap checks first, and nothing about the
// claims is looked at before the signature is known to be good):
//   - the token is at most maxTokenBytes long, checked before any decoding;
//   - exactly three segments, each only [A-Za-z0-9_-] and canonical unpadded base64url
//     (encoding/base64 silently skips '\r' and '\n', so the alphabet is checked first), all
//     three decoded before any JSON parsing or key lookup;
//   - the header is a JSON object with "alg" exactly "RS256", no "crit", "typ" absent,
//     "JWT" or "at+jwt" (any case), "kid" absent or a string;
//   - the key comes from publicKeyLookup by kid, is 2048..8192 bits, and the signature is
//     exactly the modulus size and verifies;
//   - the payload is a JSON object; "sub" is a non-empty string, "exp" a number, "nbf"/"iat"
//     numbers when present; "iss", "aud", "scopes", "scope" have their JSON types when present.
//     A member of the wrong type is a reject, never a skip: fail closed.
//   - exp/nbf/iat hold against Now with Leeway; iss/aud match when configured.
//
// Every Verify failure wraps errInvalidToken. The messages are for logs only (callers send
// a fixed 401 body) and quote attacker-controlled strings clipped to jwtMaxQuotedLen.

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// errInvalidToken is wrapped by every Verify failure (errors.Is).
var errInvalidToken = errors.New("invalid token")

// maxTokenBytes bounds the whole compact token (CONTRACT §3: oversized > 16 KiB).
const maxTokenBytes = 16 << 10

const (
	jwtDefaultLeeway = 30 * time.Second
	// jwtMinRSAKeyBits / jwtMaxRSAKeyBits bound every RSA key we verify with, whether it came
	// from the JWKS (which already filters) or from any other publicKeyLookup.
	jwtMinRSAKeyBits = 2048
	jwtMaxRSAKeyBits = 8192
	// jwtMaxNumericDate is 9999-12-31T23:59:59Z. NumericDates outside [0, this] are treated as
	// malformed, which keeps the float -> time.Time conversion far from overflow.
	jwtMaxNumericDate = 253402300799
	// jwtMaxQuotedLen clips attacker-controlled values quoted in error messages.
	jwtMaxQuotedLen = 64
)

// Claims are the verified claims of a token.
type Claims struct {
	Subject   string
	Scopes    []string // union of the "scopes" JSON array and the OAuth2 "scope" space-separated string
	Issuer    string
	Audience  []string // "aud" may be a string or an array
	ExpiresAt time.Time
	NotBefore time.Time // zero when absent
	IssuedAt  time.Time // zero when absent
}

// HasScope reports whether the token grants scope (exact, case-sensitive match).
func (c *Claims) HasScope(scope string) bool {
	if c == nil {
		return false
	}
	return slices.Contains(c.Scopes, scope)
}

type publicKeyLookup interface {
	// PublicKey returns the RS256 key with this kid. For an unknown kid it may refresh the key set
	// once (rate-limited) before failing. kid "" resolves only when the set holds exactly one key.
	PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error)
}

// tokenVerifier verifies RS256 bearer tokens. It is safe for concurrent use as long as its
// fields are not changed.
type tokenVerifier struct {
	Keys     publicKeyLookup
	Issuer   string           // "" = iss not checked; else must equal
	Audience string           // "" = aud not checked; else must be contained in aud
	Leeway   time.Duration    // clock leeway for exp/nbf/iat; 30s when zero (or negative)
	Now      func() time.Time // nil = time.Now
}

// Verify checks token and returns its claims. Every error wraps errInvalidToken.
func (v *tokenVerifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > maxTokenBytes {
		return nil, jwtInvalid("token is %d bytes, limit is %d", len(token), maxTokenBytes)
	}
	parts, err := jwtSplit(token)
	if err != nil {
		return nil, err
	}
	headerJSON, err := jwtDecodeSegment("header", parts.header)
	if err != nil {
		return nil, err
	}
	payloadJSON, err := jwtDecodeSegment("payload", parts.payload)
	if err != nil {
		return nil, err
	}
	signature, err := jwtDecodeSegment("signature", parts.signature)
	if err != nil {
		return nil, err
	}
	kid, err := jwtParseHeader(headerJSON)
	if err != nil {
		return nil, err
	}
	key, err := v.lookupKey(ctx, kid)
	if err != nil {
		return nil, err
	}
	if err := jwtVerifySignature(key, parts.signingInput, signature); err != nil {
		return nil, err
	}
	claims, err := jwtParseClaims(payloadJSON)
	if err != nil {
		return nil, err
	}
	if err := v.checkClaims(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

func (v *tokenVerifier) lookupKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if v.Keys == nil {
		return nil, jwtInvalid("no key source configured")
	}
	key, err := v.Keys.PublicKey(ctx, kid)
	if err != nil {
		return nil, jwtInvalid("key for kid %q: %w", jwtClip(kid), err)
	}
	return key, nil
}

func (v *tokenVerifier) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

func (v *tokenVerifier) leeway() time.Duration {
	if v.Leeway <= 0 {
		return jwtDefaultLeeway
	}
	return v.Leeway
}

// checkClaims applies the time window and the configured iss/aud to already-parsed claims.
func (v *tokenVerifier) checkClaims(c *Claims) error {
	now, leeway := v.now(), v.leeway()
	if !now.Before(c.ExpiresAt.Add(leeway)) {
		return jwtInvalid("expired at %s", c.ExpiresAt.Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Add(leeway).Before(c.NotBefore) {
		return jwtInvalid("not valid before %s", c.NotBefore.Format(time.RFC3339))
	}
	if !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(leeway)) {
		return jwtInvalid("issued in the future at %s", c.IssuedAt.Format(time.RFC3339))
	}
	if v.Issuer != "" && c.Issuer != v.Issuer {
		return jwtInvalid("issuer %q not accepted", jwtClip(c.Issuer))
	}
	if v.Audience != "" && !slices.Contains(c.Audience, v.Audience) {
		return jwtInvalid("audience does not contain %q", jwtClip(v.Audience))
	}
	return nil
}

// jwtCompact holds the three raw (still encoded) segments of a compact JWS.
type jwtCompact struct {
	header, payload, signature string
	signingInput               string // header "." payload, exactly as received
}

func jwtSplit(token string) (jwtCompact, error) {
	if dots := strings.Count(token, "."); dots != 2 {
		return jwtCompact{}, jwtInvalid("%d segments, want 3", dots+1)
	}
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	return jwtCompact{
		header:       token[:first],
		payload:      token[first+1 : last],
		signature:    token[last+1:],
		signingInput: token[:last],
	}, nil
}

// jwtSegmentEncoding is strict: no padding (RawURL), and non-zero trailing bits are an error,
// so every byte string has exactly one accepted encoding.
var jwtSegmentEncoding = base64.RawURLEncoding.Strict()

func jwtDecodeSegment(name, segment string) ([]byte, error) {
	for i := 0; i < len(segment); i++ {
		if !jwtIsBase64URLByte(segment[i]) {
			return nil, jwtInvalid("%s: byte %d is not base64url", name, i)
		}
	}
	decoded, err := jwtSegmentEncoding.DecodeString(segment)
	if err != nil {
		return nil, jwtInvalid("%s: %w", name, err)
	}
	return decoded, nil
}

func jwtIsBase64URLByte(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}

// jwtParseHeader checks the JOSE header and returns its kid ("" when absent).
func jwtParseHeader(headerJSON []byte) (string, error) {
	header, err := jwtDecodeObject(headerJSON)
	if err != nil {
		return "", jwtInvalid("header: %w", err)
	}
	alg, present, err := jwtStringMember(header, "alg")
	if err != nil {
		return "", jwtInvalid("header: %w", err)
	}
	if !present {
		return "", jwtInvalid("header: alg missing")
	}
	if alg != "RS256" {
		return "", jwtInvalid("header: alg %q not allowed, only RS256", jwtClip(alg))
	}
	// We implement no JWS extension, so any crit (even an empty or malformed one) is a
	// header we do not understand (RFC 7515 §4.1.11).
	if _, present := header["crit"]; present {
		return "", jwtInvalid("header: crit not supported")
	}
	typ, present, err := jwtStringMember(header, "typ")
	if err != nil {
		return "", jwtInvalid("header: %w", err)
	}
	// "at+jwt" is the RFC 9068 type of OAuth 2.0 access tokens that standard IdPs issue.
	if present && !strings.EqualFold(typ, "JWT") && !strings.EqualFold(typ, "at+jwt") {
		return "", jwtInvalid("header: typ %q not allowed", jwtClip(typ))
	}
	kid, _, err := jwtStringMember(header, "kid")
	if err != nil {
		return "", jwtInvalid("header: %w", err)
	}
	return kid, nil
}

func jwtVerifySignature(key *rsa.PublicKey, signingInput string, signature []byte) error {
	if key == nil || key.N == nil {
		return jwtInvalid("no public key")
	}
	if bits := key.N.BitLen(); bits < jwtMinRSAKeyBits || bits > jwtMaxRSAKeyBits {
		return jwtInvalid("RSA key of %d bits not accepted", bits)
	}
	if len(signature) != key.Size() {
		return jwtInvalid("signature is %d bytes, key needs %d", len(signature), key.Size())
	}
	digest := sha256.Sum256([]byte(signingInput))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], signature); err != nil {
		return jwtInvalid("bad signature: %w", err)
	}
	return nil
}

// jwtParseClaims decodes the payload. It checks types and presence, not times or iss/aud.
func jwtParseClaims(payloadJSON []byte) (*Claims, error) {
	payload, err := jwtDecodeObject(payloadJSON)
	if err != nil {
		return nil, jwtInvalid("payload: %w", err)
	}
	var c Claims
	var present bool
	if c.Subject, present, err = jwtStringMember(payload, "sub"); err != nil {
		return nil, jwtInvalid("payload: %w", err)
	}
	if !present || c.Subject == "" {
		return nil, jwtInvalid("payload: sub missing or empty")
	}
	if c.ExpiresAt, present, err = jwtNumericDateMember(payload, "exp"); err != nil {
		return nil, jwtInvalid("payload: %w", err)
	}
	if !present {
		return nil, jwtInvalid("payload: exp missing")
	}
	if c.NotBefore, _, err = jwtNumericDateMember(payload, "nbf"); err != nil {
		return nil, jwtInvalid("payload: %w", err)
	}
	if c.IssuedAt, _, err = jwtNumericDateMember(payload, "iat"); err != nil {
		return nil, jwtInvalid("payload: %w", err)
	}
	if c.Issuer, _, err = jwtStringMember(payload, "iss"); err != nil {
		return nil, jwtInvalid("payload: %w", err)
	}
	if c.Audience, err = jwtAudienceMember(payload); err != nil {
		return nil, jwtInvalid("payload: %w", err)
	}
	if c.Scopes, err = jwtScopeMembers(payload); err != nil {
		return nil, jwtInvalid("payload: %w", err)
	}
	return &c, nil
}

// jwtAudienceMember reads "aud", which RFC 7519 §4.1.3 allows as a string or an array of strings.
func jwtAudienceMember(object map[string]json.RawMessage) ([]string, error) {
	raw, present := object["aud"]
	if !present {
		return nil, nil
	}
	if jwtJSONKind(raw) == '"' {
		var aud string
		if err := json.Unmarshal(raw, &aud); err != nil {
			return nil, fmt.Errorf("aud: %w", err)
		}
		return []string{aud}, nil
	}
	aud, err := jwtStringArray(raw)
	if err != nil {
		return nil, fmt.Errorf("aud: %w", err)
	}
	return aud, nil
}

// jwtScopeMembers returns the union, first occurrence first, of "scopes" (array of strings)
// and "scope" (OAuth2, RFC 8693 §4.2: space-separated string). Empty entries are dropped.
func jwtScopeMembers(object map[string]json.RawMessage) ([]string, error) {
	var scopes []string
	if raw, present := object["scopes"]; present {
		list, err := jwtStringArray(raw)
		if err != nil {
			return nil, fmt.Errorf("scopes: %w", err)
		}
		scopes = list
	}
	spaced, present, err := jwtStringMember(object, "scope")
	if err != nil {
		return nil, err
	}
	if present {
		scopes = append(scopes, strings.Fields(spaced)...)
	}
	union := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if s != "" && !slices.Contains(union, s) {
			union = append(union, s)
		}
	}
	return union, nil
}

// jwtDecodeObject decodes a JSON object into its members. Duplicate names keep the last value
// (encoding/json semantics). Member names are matched exactly, unlike struct decoding,
// which would also take "EXP" for "exp".
func jwtDecodeObject(data []byte) (map[string]json.RawMessage, error) {
	var object map[string]json.RawMessage
	if err := json.Unmarshal(data, &object); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if object == nil { // the literal null decodes without error
		return nil, errors.New("not a JSON object: null")
	}
	return object, nil
}

// jwtJSONKind returns the first byte of a raw JSON value: '"', '{', '[', 't', 'f', 'n', or a
// number's first byte. RawMessage values taken from a decoded object carry no leading space.
func jwtJSONKind(raw json.RawMessage) byte {
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// jwtStringMember reads an optional string member. Any other JSON type, null included, is an error.
func jwtStringMember(object map[string]json.RawMessage, name string) (value string, present bool, err error) {
	raw, present := object[name]
	if !present {
		return "", false, nil
	}
	if jwtJSONKind(raw) != '"' {
		return "", true, fmt.Errorf("%s is not a string", name)
	}
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", true, fmt.Errorf("%s: %w", name, err)
	}
	return value, true, nil
}

// jwtStringArray decodes an array whose elements are all strings. Decoding straight into
// []string would turn a null element into "" without error, so elements are checked one by one.
func jwtStringArray(raw json.RawMessage) ([]string, error) {
	if jwtJSONKind(raw) != '[' {
		return nil, errors.New("not an array")
	}
	var elements []json.RawMessage
	if err := json.Unmarshal(raw, &elements); err != nil {
		return nil, err
	}
	values := make([]string, 0, len(elements))
	for i, element := range elements {
		if jwtJSONKind(element) != '"' {
			return nil, fmt.Errorf("element %d is not a string", i)
		}
		var value string
		if err := json.Unmarshal(element, &value); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		values = append(values, value)
	}
	return values, nil
}

// jwtNumericDateMember reads an optional NumericDate (RFC 7519 §2: seconds since the epoch,
// possibly fractional). It must be a JSON number in [0, jwtMaxNumericDate].
func jwtNumericDateMember(object map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, present := object[name]
	if !present {
		return time.Time{}, false, nil
	}
	if kind := jwtJSONKind(raw); kind != '-' && (kind < '0' || kind > '9') {
		return time.Time{}, true, fmt.Errorf("%s is not a number", name)
	}
	var seconds float64
	if err := json.Unmarshal(raw, &seconds); err != nil {
		return time.Time{}, true, fmt.Errorf("%s: %w", name, err)
	}
	if !(seconds >= 0 && seconds <= jwtMaxNumericDate) {
		return time.Time{}, true, fmt.Errorf("%s %v out of range", name, seconds)
	}
	whole, fraction := math.Modf(seconds)
	return time.Unix(int64(whole), int64(fraction*1e9)).UTC(), true, nil
}

// jwtInvalid builds an error wrapping errInvalidToken; format may use %w for a cause.
func jwtInvalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errInvalidToken}, args...)...)
}

// jwtClip shortens an untrusted string before it is quoted into a log message.
func jwtClip(s string) string {
	if len(s) <= jwtMaxQuotedLen {
		return s
	}
	return s[:jwtMaxQuotedLen] + "..."
}

// signRS256 mints a compact RS256 JWS (header {"alg":"RS256","typ":"JWT","kid":kid}, kid left
// out when empty). Used by the dev mode, the `token` subcommand and tests.
func signRS256(key *rsa.PrivateKey, kid string, claims map[string]any) (string, error) {
	if key == nil {
		return "", errors.New("sign RS256: no private key")
	}
	if claims == nil {
		return "", errors.New("sign RS256: no claims")
	}
	header := map[string]string{"alg": "RS256", "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	headerJSON, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("sign RS256: header: %w", err)
	}
	payloadJSON, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign RS256: claims: %w", err)
	}
	signingInput := jwtSegmentEncoding.EncodeToString(headerJSON) + "." + jwtSegmentEncoding.EncodeToString(payloadJSON)
	digest := sha256.Sum256([]byte(signingInput))
	// The random source is ignored by PKCS #1 v1.5 signing, which is deterministic.
	signature, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign RS256: %w", err)
	}
	return signingInput + "." + jwtSegmentEncoding.EncodeToString(signature), nil
}
