package main

// reference.go: the verdict the SE should give, computed without the SE.
//
//	reference = plain golang-jwt verdict  AND  no documented SE rule violated
//
// The plain verdict is jwt.Parse with WithValidMethods(["RS256"]), WithLeeway(30s),
// WithExpirationRequired, plus WithIssuer/WithAudience when the SE under test has them
// configured, and a key function that takes the key by kid from the served JWKS (every RSA
// entry, whatever its size). The SE rules are re-implemented here from CONTRACT §3 and the
// header of jwt.go, never imported (see the package comment in main.go for the list).
//
// Each case of the table declares both the verdict it expects and the single rule (or none)
// that makes the SE differ from the plain library. checkExpectation fails the case when
// the computed reference disagrees with either, so a new difference, in the SE or in the
// library, cannot pass silently as long as the table is right, and the table cannot drift
// from what the library actually does.

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Documented SE rules that go beyond the plain library. The values are printed in the table.
const (
	ruleMaxSize      = "token <= 16 KiB"
	ruleMinRSABits   = "RSA key >= 2048 bits"
	ruleSubject      = "sub non-empty string"
	ruleIssuedAt     = "iat not in the future"
	ruleTyp          = "typ absent|JWT|at+jwt"
	ruleNoCrit       = "no crit header"
	ruleCanonicalB64 = "canonical base64url"
	ruleDateRange    = "NumericDate in [0, year 9999]"
	ruleClaimTypes   = "claims have their JSON types"
)

const (
	// seLeeway is the SE's clock leeway (jwtDefaultLeeway), used for the library too.
	seLeeway = 30 * time.Second
	// seMaxTokenBytes is CONTRACT §3's "oversized (> 16 KiB)".
	seMaxTokenBytes = 16 << 10
	// seMinRSABits is CONTRACT §3's "RSA keys under 2048 bits" are rejected.
	seMinRSABits = 2048
	// seMaxNumericDate is 9999-12-31T23:59:59Z; the SE treats larger dates as malformed.
	seMaxNumericDate = 253402300799
)

// seConfig is the part of an SE's configuration that changes verdicts.
type seConfig struct {
	issuer   string // SE_JWT_ISSUER, "" = not checked
	audience string // SE_JWT_AUDIENCE, "" = not checked
}

// libraryVerdict runs the plain library; nil means accepted.
func libraryVerdict(token string, keys map[string]*rsa.PublicKey, cfg seConfig, now time.Time) error {
	options := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithLeeway(seLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	}
	if cfg.issuer != "" {
		options = append(options, jwt.WithIssuer(cfg.issuer))
	}
	if cfg.audience != "" {
		options = append(options, jwt.WithAudience(cfg.audience))
	}
	keyFunc := func(t *jwt.Token) (any, error) {
		kid, ok := t.Header["kid"].(string)
		if !ok {
			return nil, errors.New("no string kid in the header")
		}
		key, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("kid %q not in the JWKS", kid)
		}
		return key, nil
	}
	_, err := jwt.Parse(token, keyFunc, options...)
	return err
}

// seRuleViolations lists the documented SE rules the token breaks, in the order of the
// constants above. Rules that need a decoded segment are skipped when it does not decode:
// such a token is malformed for the library already.
func seRuleViolations(token string, keys map[string]*rsa.PublicKey, now time.Time) []string {
	var broken []string
	if len(token) > seMaxTokenBytes {
		broken = append(broken, ruleMaxSize)
	}
	segments := strings.Split(token, ".")
	if len(segments) != 3 {
		return broken
	}
	decoded := make([][]byte, 3)
	canonical := true
	for i, segment := range segments {
		raw, err := base64.RawURLEncoding.DecodeString(segment)
		if err != nil {
			return broken
		}
		decoded[i] = raw
		canonical = canonical && base64.RawURLEncoding.EncodeToString(raw) == segment
	}
	var header, payload map[string]any
	if json.Unmarshal(decoded[0], &header) != nil || json.Unmarshal(decoded[1], &payload) != nil {
		return broken
	}
	if kid, ok := header["kid"].(string); ok && keys[kid] != nil && keys[kid].N.BitLen() < seMinRSABits {
		broken = append(broken, ruleMinRSABits)
	}
	if sub, ok := payload["sub"].(string); !ok || sub == "" {
		broken = append(broken, ruleSubject)
	}
	if iat, ok := payload["iat"].(float64); ok && iat > float64(now.Add(seLeeway).Unix()) {
		broken = append(broken, ruleIssuedAt)
	}
	if typ, present := header["typ"]; present && !typAllowed(typ) {
		broken = append(broken, ruleTyp)
	}
	if _, present := header["crit"]; present {
		broken = append(broken, ruleNoCrit)
	}
	if !canonical {
		broken = append(broken, ruleCanonicalB64)
	}
	if !numericDatesInRange(payload) {
		broken = append(broken, ruleDateRange)
	}
	if !claimTypesHold(payload) {
		broken = append(broken, ruleClaimTypes)
	}
	return broken
}

func typAllowed(typ any) bool {
	s, ok := typ.(string)
	return ok && (strings.EqualFold(s, "JWT") || strings.EqualFold(s, "at+jwt"))
}

// numericDatesInRange: exp, nbf and iat, when they are numbers, lie in [0, year 9999].
// (A date that is not a number at all breaks ruleClaimTypes instead.)
func numericDatesInRange(payload map[string]any) bool {
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, ok := payload[name].(float64); ok && (v < 0 || v > seMaxNumericDate) {
			return false
		}
	}
	return true
}

// claimTypesHold: every claim the SE reads has its JSON type when present, whether or not
// the SE is configured to use it (fail closed).
func claimTypesHold(payload map[string]any) bool {
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, present := payload[name]; present {
			if _, ok := v.(float64); !ok {
				return false
			}
		}
	}
	for _, name := range []string{"iss", "scope"} {
		if v, present := payload[name]; present {
			if _, ok := v.(string); !ok {
				return false
			}
		}
	}
	if v, present := payload["aud"]; present {
		if _, ok := v.(string); !ok && !isStringArray(v) {
			return false
		}
	}
	if v, present := payload["scopes"]; present && !isStringArray(v) {
		return false
	}
	return true
}

func isStringArray(v any) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	for _, element := range list {
		if _, ok := element.(string); !ok {
			return false
		}
	}
	return true
}

// reference is the computed expectation for one case.
type reference struct {
	libraryErr error    // nil = the plain library accepts
	violations []string // documented SE rules broken
	accept     bool     // the verdict the SE must give
	problem    string   // non-empty when the table's declaration does not match the computation
}

// evaluate computes the reference for c and checks it against the case's declaration.
func evaluate(c tokenCase, keys map[string]*rsa.PublicKey, cfg seConfig, now time.Time) reference {
	r := reference{
		libraryErr: libraryVerdict(c.token, keys, cfg, now),
		violations: seRuleViolations(c.token, keys, now),
	}
	r.accept = r.libraryErr == nil && len(r.violations) == 0
	r.problem = checkExpectation(c, r)
	return r
}

// checkExpectation returns "" when the computed reference is exactly what the case declares.
func checkExpectation(c tokenCase, r reference) string {
	libraryAccepts := r.libraryErr == nil
	switch {
	case r.accept != c.wantAccept:
		return fmt.Sprintf("table expects %s, reference computes %s (library err: %v, SE rules broken: %v)",
			verdictWord(c.wantAccept), verdictWord(r.accept), r.libraryErr, r.violations)
	case c.rule == "" && libraryAccepts != c.wantAccept:
		return fmt.Sprintf("undeclared difference: library %s, SE rules broken: %v", verdictWord(libraryAccepts), r.violations)
	case c.rule != "" && !libraryAccepts:
		return fmt.Sprintf("declared rule %q never decides: the library already rejects (%v)", c.rule, r.libraryErr)
	case c.rule != "" && !slices.Equal(r.violations, []string{c.rule}):
		return fmt.Sprintf("declared rule %q, but the token breaks %v", c.rule, r.violations)
	}
	return ""
}

func verdictWord(accept bool) string {
	if accept {
		return "accept"
	}
	return "reject"
}
