// tokens.go mints the JWTs the check sends: valid RS256 tokens with chosen
// scopes, and the invalid kinds CONTRACT §3 says must get 401.
//
// Format of a valid token: header {alg: RS256, typ: JWT, kid: keyID}; claims
// {sub, iat, exp, scopes: [...]} or, for the OAuth2 form, {scope: "a b"}.
package main

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenSubject is the `sub` of every valid token; uploads must record it as
// uploaded_by.
const tokenSubject = "openapicheck-user"

// allScopes is every scope CONTRACT §3 grants something with.
var allScopes = []string{"files:read", "files:write", "storage:read", "storage:write"}

// tokens holds the bearer strings one run uses.
type tokens struct {
	Full        string            // every scope
	WithoutOf   map[string]string // scope -> token with every scope but it
	OAuth2Read  string            // files:read through the space-separated `scope` claim
	Expired     string
	BadSig      string // signed by a key the JWKS does not hold, same kid
	UnknownKid  string
	HS256       string // HMAC "signed" with the public modulus: alg confusion
	AlgNone     string
	NotYetValid string
}

// mintTokens builds every token from the world's keys.
func mintTokens(w *world) (*tokens, error) {
	now := time.Now()
	t := &tokens{WithoutOf: map[string]string{}}
	var err error
	sign := func(claims jwt.MapClaims) string {
		if err != nil {
			return ""
		}
		var s string
		s, err = signRS256(w, keyID, claims)
		return s
	}
	t.Full = sign(scopeClaims(now, allScopes))
	for _, scope := range allScopes {
		var rest []string
		for _, other := range allScopes {
			if other != scope {
				rest = append(rest, other)
			}
		}
		t.WithoutOf[scope] = sign(scopeClaims(now, rest))
	}
	oauth := jwt.MapClaims{"sub": tokenSubject, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "files:read"}
	t.OAuth2Read = sign(oauth)
	expired := scopeClaims(now, allScopes)
	expired["exp"] = now.Add(-time.Hour).Unix()
	expired["iat"] = now.Add(-2 * time.Hour).Unix()
	t.Expired = sign(expired)
	future := scopeClaims(now, allScopes)
	future["nbf"] = now.Add(time.Hour).Unix()
	t.NotYetValid = sign(future)
	if err != nil {
		return nil, err
	}
	if t.UnknownKid, err = signRS256(w, "no-such-kid", scopeClaims(now, allScopes)); err != nil {
		return nil, err
	}
	if t.BadSig, err = signWith(w.otherKey, keyID, scopeClaims(now, allScopes)); err != nil {
		return nil, err
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, scopeClaims(now, allScopes))
	hs.Header["kid"] = keyID
	if t.HS256, err = hs.SignedString(w.SignKey.PublicKey.N.Bytes()); err != nil {
		return nil, fmt.Errorf("sign HS256 token: %w", err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, scopeClaims(now, allScopes))
	none.Header["kid"] = keyID
	if t.AlgNone, err = none.SignedString(jwt.UnsafeAllowNoneSignatureType); err != nil {
		return nil, fmt.Errorf("sign alg=none token: %w", err)
	}
	return t, nil
}

// scopeClaims are valid claims for an hour with the scopes as a JSON array.
func scopeClaims(now time.Time, scopes []string) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": tokenSubject, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scopes": scopes,
	}
}

// signRS256 signs with the key the JWKS publishes.
func signRS256(w *world, kid string, claims jwt.MapClaims) (string, error) {
	return signWith(w.SignKey, kid, claims)
}

// signWith signs RS256 with any key under the given kid.
func signWith(key any, kid string, claims jwt.MapClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign RS256 token: %w", err)
	}
	return s, nil
}
