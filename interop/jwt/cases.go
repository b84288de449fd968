package main

// cases.go: the table of tokens. Every case names the SE it is sent to, the verdict the SE
// must give, and the documented SE rule (or none) that makes that verdict differ from the
// plain library's. Every accepted token carries the files:read scope, so the SE answers
// GET /api/v1/files with 200 (accepted) or 401 (rejected) and nothing else.

import (
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// target is the SE process a case is sent to.
type target int

const (
	targetPlain  target = iota // no SE_JWT_ISSUER / SE_JWT_AUDIENCE
	targetIssAud               // SE_JWT_ISSUER=testIssuer, SE_JWT_AUDIENCE=testAudience
)

const (
	testIssuer   = "https://idp.interop.test/"
	testAudience = "artstore-se"
	testSubject  = "interop-user"
)

// configOf is the verdict-relevant configuration of each target.
func configOf(t target) seConfig {
	if t == targetIssAud {
		return seConfig{issuer: testIssuer, audience: testAudience}
	}
	return seConfig{}
}

type tokenCase struct {
	name       string
	target     target
	token      string
	wantAccept bool   // the SE's expected verdict
	rule       string // documented SE rule that alone makes the SE differ from the library ("" = none)
}

// caseBuilder collects cases and the first construction error, so the table reads as a list.
type caseBuilder struct {
	ks    *keySet
	now   time.Time
	cases []tokenCase
	err   error
}

func (b *caseBuilder) add(name string, t target, wantAccept bool, rule string, token string, err error) {
	if b.err != nil {
		return
	}
	if err != nil {
		b.err = fmt.Errorf("case %q: %w", name, err)
		return
	}
	b.cases = append(b.cases, tokenCase{name: name, target: t, token: token, wantAccept: wantAccept, rule: rule})
}

// claims is the payload of the valid token: sub, iat now, exp in 1h, scopes ["files:read"].
func (b *caseBuilder) claims() map[string]any {
	return map[string]any{
		"sub":    testSubject,
		"iat":    b.now.Unix(),
		"exp":    b.now.Add(time.Hour).Unix(),
		"scopes": []string{"files:read"},
	}
}

// header is the header golang-jwt writes for an RS256 token with kid2048.
func header(alg, kid string) map[string]any {
	return map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}
}

// rs256 signs claims with the published 2048-bit key through the library.
func (b *caseBuilder) rs256(claims map[string]any) (string, error) {
	return libraryToken(jwt.SigningMethodRS256, b.ks.rsa2048, kid2048, claims, nil)
}

// buildCases returns the whole table; now is the issue time of every token.
func buildCases(ks *keySet, now time.Time) ([]tokenCase, error) {
	b := &caseBuilder{ks: ks, now: now}
	const accept, reject = true, false
	unix := func(d time.Duration) int64 { return now.Add(d).Unix() }
	c := b.claims

	valid, err := b.rs256(c())
	b.add("valid RS256, 2048-bit key", targetPlain, accept, "", valid, err)
	b.addValidityCases(c, unix)
	b.addAlgorithmCases(c)
	b.addKeyCases(c)
	b.addEncodingCases(c, valid)

	for _, v := range []struct {
		name   string
		accept bool
		claims map[string]any
	}{
		{"iss and aud match", accept, withMember(withMember(c(), "iss", testIssuer), "aud", testAudience)},
		{"aud array holds the audience", accept, withMember(withMember(c(), "iss", testIssuer), "aud", []string{"other", testAudience})},
		{"iss mismatch", reject, withMember(withMember(c(), "iss", "https://evil.test/"), "aud", testAudience)},
		{"aud mismatch", reject, withMember(withMember(c(), "iss", testIssuer), "aud", "someone-else")},
		{"iss missing", reject, withMember(c(), "aud", testAudience)},
		{"aud missing", reject, withMember(c(), "iss", testIssuer)},
	} {
		token, err := b.rs256(v.claims)
		b.add("iss/aud SE: "+v.name, targetIssAud, v.accept, "", token, err)
	}
	return b.cases, b.err
}

// addValidityCases: claim presence, types and the time window.
func (b *caseBuilder) addValidityCases(c func() map[string]any, unix func(time.Duration) int64) {
	const accept, reject = true, false
	for _, v := range []struct {
		name   string
		accept bool
		rule   string
		claims map[string]any
	}{
		{"scope as OAuth2 string", accept, "", withMember(withoutMember(c(), "scopes"), "scope", "openid files:read")},
		{"iss/aud present, SE not configured", accept, "", withMember(withMember(c(), "iss", "https://other.test/"), "aud", "other")},
		{"expired 1h ago", reject, "", withMember(withMember(c(), "exp", unix(-time.Hour)), "iat", unix(-2*time.Hour))},
		{"expired 10s ago (within leeway)", accept, "", withMember(withMember(c(), "exp", unix(-10*time.Second)), "iat", unix(-time.Hour))},
		{"nbf in 1h", reject, "", withMember(c(), "nbf", unix(time.Hour))},
		{"nbf in 10s (within leeway)", accept, "", withMember(c(), "nbf", unix(10*time.Second))},
		{"iat in 1h", reject, ruleIssuedAt, withMember(c(), "iat", unix(time.Hour))},
		{"exp missing", reject, "", withoutMember(c(), "exp")},
		{"exp as a string", reject, "", withMember(c(), "exp", fmt.Sprint(unix(time.Hour)))},
		{"sub missing", reject, ruleSubject, withoutMember(c(), "sub")},
		{"sub empty", reject, ruleSubject, withMember(c(), "sub", "")},
		{"sub not a string", reject, ruleSubject, withMember(c(), "sub", 42)},
		{"nbf negative", reject, ruleDateRange, withMember(c(), "nbf", -1)},
		{"exp after year 9999", reject, ruleDateRange, withMember(c(), "exp", seMaxNumericDate+1)},
		{"scopes not an array", reject, ruleClaimTypes, withMember(c(), "scopes", "files:read")},
	} {
		token, err := b.rs256(v.claims)
		b.add(v.name, targetPlain, v.accept, v.rule, token, err)
	}
	at, err := libraryToken(jwt.SigningMethodRS256, b.ks.rsa2048, kid2048, c(), map[string]any{"typ": "at+jwt"})
	b.add(`typ "at+jwt" (RFC 9068)`, targetPlain, accept, "", at, err)
}

// addAlgorithmCases: everything that is not RS256.
func (b *caseBuilder) addAlgorithmCases(c func() map[string]any) {
	const reject = false
	ks := b.ks
	publicPEM, err := publicKeyPEM(&ks.rsa2048.PublicKey)
	if err != nil {
		b.add("HS256, RSA public key PEM as secret", targetPlain, reject, "", "", err)
		return
	}
	for _, v := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"HS256, RSA public key PEM as secret", jwt.SigningMethodHS256, publicPEM, kid2048},
		{"alg none", jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid2048},
		{"RS384", jwt.SigningMethodRS384, ks.rsa2048, kid2048},
		{"RS512", jwt.SigningMethodRS512, ks.rsa2048, kid2048},
		{"PS256", jwt.SigningMethodPS256, ks.rsa2048, kid2048},
		{"ES256, EC key not in the JWKS", jwt.SigningMethodES256, ks.ecKey, kidEC},
	} {
		token, err := libraryToken(v.method, v.key, v.kid, c(), nil)
		b.add(v.name, targetPlain, reject, "", token, err)
	}
	crit, err := handToken(jwt.SigningMethodRS256, ks.rsa2048, withMember(header("RS256", kid2048), "crit", []string{"exp"}), c())
	b.add(`crit ["exp"] header`, targetPlain, reject, ruleNoCrit, crit, err)
	typ, err := handToken(jwt.SigningMethodRS256, ks.rsa2048, withMember(header("RS256", kid2048), "typ", "JOSE"), c())
	b.add(`typ "JOSE"`, targetPlain, reject, ruleTyp, typ, err)
}

// addKeyCases: which key signed, and which kid names it.
func (b *caseBuilder) addKeyCases(c func() map[string]any) {
	const accept, reject = true, false
	ks := b.ks
	for _, v := range []struct {
		name   string
		accept bool
		rule   string
		signer any
		kid    string
	}{
		{"RS256, 4096-bit key", accept, "", ks.rsa4096, kid4096},
		{"kid of the 1024-bit key (in the JWKS)", reject, ruleMinRSABits, ks.rsa1024, kid1024},
		{"unknown kid", reject, "", ks.rsa2048, kidUnknown},
		{"no kid (JWKS has several keys)", reject, "", ks.rsa2048, ""},
		{"signed by an unpublished key, known kid", reject, "", ks.unpublishedRSA, kid2048},
	} {
		token, err := libraryToken(jwt.SigningMethodRS256, v.signer, v.kid, c(), nil)
		b.add(v.name, targetPlain, v.accept, v.rule, token, err)
	}
	numeric, err := handToken(jwt.SigningMethodRS256, ks.rsa2048, map[string]any{"alg": "RS256", "kid": 2048, "typ": "JWT"}, c())
	b.add("kid not a string", targetPlain, reject, "", numeric, err)
}

// addEncodingCases: surgery on the compact form of the valid token, and sizes.
func (b *caseBuilder) addEncodingCases(c func() map[string]any, valid string) {
	const accept, reject = true, false
	ks := b.ks
	v, err := splitJWS(valid)
	if err != nil {
		b.add("encoding cases", targetPlain, reject, "", "", err)
		return
	}
	forged := withMember(c(), "sub", "admin")
	forgedJSON := fmt.Sprintf(`{"exp":%d,"iat":%d,"scopes":["files:read","files:write"],"sub":%q}`,
		forged["exp"], forged["iat"], forged["sub"])
	b.add("tampered payload", targetPlain, reject, "", jws{v.header, b64.EncodeToString([]byte(forgedJSON)), v.signature}.String(), nil)
	tamperedHeader := fmt.Sprintf(`{"alg":"RS256","kid":%q,"typ":"JWT","x":"tampered"}`, kid2048)
	b.add("tampered header", targetPlain, reject, "", jws{b64.EncodeToString([]byte(tamperedHeader)), v.payload, v.signature}.String(), nil)

	signature, err := b64.DecodeString(v.signature)
	if err != nil {
		b.add("truncated signature", targetPlain, reject, "", "", err)
		return
	}
	b.add("truncated signature (255 of 256 bytes)", targetPlain, reject, "", jws{v.header, v.payload, b64.EncodeToString(signature[:len(signature)-1])}.String(), nil)
	b.add("empty signature", targetPlain, reject, "", jws{v.header, v.payload, ""}.String(), nil)
	loose, err := nonCanonicalTail(v.signature)
	b.add("signature with non-zero trailing bits", targetPlain, reject, ruleCanonicalB64, jws{v.header, v.payload, loose}.String(), err)
	b.add("padded signature (==)", targetPlain, reject, "", valid+"==", nil)
	padded, err := paddedHeaderToken(jwt.SigningMethodRS256, ks.rsa2048, header("RS256", kid2048), c())
	b.add("padded header, signed as sent", targetPlain, reject, "", padded, err)
	b.add("2 segments", targetPlain, reject, "", v.header+"."+v.payload, nil)
	b.add("4 segments", targetPlain, reject, "", valid+"."+v.signature, nil)
	middle := len(v.payload) / 2
	b.add("space inside the payload", targetPlain, reject, "", v.header+"."+v.payload[:middle]+" "+v.payload[middle:]+"."+v.signature, nil)
	b.add("tab inside the payload", targetPlain, reject, "", v.header+"."+v.payload[:middle]+"\t"+v.payload[middle:]+"."+v.signature, nil)

	atCap, err := sizedToken(jwt.SigningMethodRS256, ks.rsa2048, header("RS256", kid2048), c(), seMaxTokenBytes)
	b.add(fmt.Sprintf("exactly %d bytes", seMaxTokenBytes), targetPlain, accept, "", atCap, err)
	overCap, err := sizedToken(jwt.SigningMethodRS256, ks.rsa2048, header("RS256", kid2048), c(), seMaxTokenBytes+1)
	b.add(fmt.Sprintf("%d bytes, validly signed", seMaxTokenBytes+1), targetPlain, reject, ruleMaxSize, overCap, err)
	// Well under the SE's 64 KiB header limit, so the answer still comes from the verifier.
	huge, err := b.rs256(withMember(c(), "blob", strings.Repeat("x", 24<<10)))
	b.add(fmt.Sprintf("%d bytes (24 KiB claim), validly signed", len(huge)), targetPlain, reject, ruleMaxSize, huge, err)
}
