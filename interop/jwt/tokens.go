package main

// tokens.go: building tokens, with golang-jwt where it is willing, by hand where the point
// is a token the library would never produce (bad headers, re-encodings, surgery on a valid
// token).
//
// Compact JWS (RFC 7515 §7.1): B64(header) "." B64(payload) "." B64(signature), B64 being
// unpadded base64url. Hand-made tokens marshal their header and payload with encoding/json
// (map keys sorted, so the bytes are deterministic) and sign with the library's signing
// methods, so a hand-made token differs from a library one only where it is meant to.

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// b64 is the JWS segment encoding.
var b64 = base64.RawURLEncoding

// libraryToken signs claims with golang-jwt: header {"alg":method,"typ":"JWT"} plus kid (when
// not empty) plus extraHeader.
func libraryToken(method jwt.SigningMethod, key any, kid string, claims map[string]any, extraHeader map[string]any) (string, error) {
	token := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	if kid != "" {
		token.Header["kid"] = kid
	}
	for name, value := range extraHeader {
		token.Header[name] = value
	}
	signed, err := token.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", method.Alg(), err)
	}
	return signed, nil
}

// handToken marshals header and claims itself and signs B64(header) "." B64(claims) with method.
func handToken(method jwt.SigningMethod, key any, header, claims map[string]any) (string, error) {
	headerJSON, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("marshal header: %w", err)
	}
	claimsJSON, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marshal claims: %w", err)
	}
	return signSegments(method, key, b64.EncodeToString(headerJSON), b64.EncodeToString(claimsJSON))
}

// signSegments signs the two already-encoded segments exactly as given (padding included).
func signSegments(method jwt.SigningMethod, key any, header, payload string) (string, error) {
	signingInput := header + "." + payload
	signature, err := method.Sign(signingInput, key)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", method.Alg(), err)
	}
	return signingInput + "." + b64.EncodeToString(signature), nil
}

// jws is a compact token cut into its three encoded segments.
type jws struct{ header, payload, signature string }

func splitJWS(token string) (jws, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return jws{}, fmt.Errorf("%d segments, want 3", len(parts))
	}
	return jws{parts[0], parts[1], parts[2]}, nil
}

func (t jws) String() string { return t.header + "." + t.payload + "." + t.signature }

// nonCanonicalTail re-encodes a segment so that it decodes to the same bytes under the
// lenient decoder but not under a strict one: it sets a low, unused bit of the last
// character. The segment must end in a partial quantum (length % 4 != 0).
func nonCanonicalTail(segment string) (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(segment)%4 == 0 {
		return "", fmt.Errorf("segment of %d characters has no unused bits", len(segment))
	}
	last := strings.IndexByte(alphabet, segment[len(segment)-1])
	if last < 0 {
		return "", fmt.Errorf("segment ends in %q, not base64url", segment[len(segment)-1])
	}
	if last&1 != 0 {
		return "", fmt.Errorf("segment is already non-canonical")
	}
	return segment[:len(segment)-1] + string(alphabet[last|1]), nil
}

// paddedHeaderToken is a token whose header segment carries '=' padding, signed over that
// padded text so that only the padding is wrong. Spaces are appended to the header JSON
// (still valid JSON) until its length is not a multiple of 3, i.e. until padding appears.
func paddedHeaderToken(method jwt.SigningMethod, key any, header, claims map[string]any) (string, error) {
	headerJSON, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("marshal header: %w", err)
	}
	claimsJSON, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marshal claims: %w", err)
	}
	for len(headerJSON)%3 == 0 {
		headerJSON = append(headerJSON, ' ')
	}
	return signSegments(method, key, base64.URLEncoding.EncodeToString(headerJSON), b64.EncodeToString(claimsJSON))
}

// sizedToken builds a validly signed token of exactly size bytes by growing a "pad" claim
// and, because unpadded base64 never has a length of 4k+1, a "pad" header member.
func sizedToken(method jwt.SigningMethod, key any, header, claims map[string]any, size int) (string, error) {
	signature, err := method.Sign("probe", key)
	if err != nil {
		return "", fmt.Errorf("probe signature: %w", err)
	}
	signatureChars := b64.EncodedLen(len(signature))
	for headerPad := 0; headerPad < 4; headerPad++ {
		h := withMember(header, "pad", strings.Repeat("h", headerPad))
		headerJSON, err := json.Marshal(h)
		if err != nil {
			return "", fmt.Errorf("marshal header: %w", err)
		}
		fixed := b64.EncodedLen(len(headerJSON)) + 2 + signatureChars
		empty, err := json.Marshal(withMember(claims, "pad", ""))
		if err != nil {
			return "", fmt.Errorf("marshal claims: %w", err)
		}
		// payload bytes needed ~ 3/4 of the characters left; try around that.
		guess := (size-fixed)*3/4 - len(empty)
		for pad := max(guess-4, 0); pad <= guess+4; pad++ {
			c := withMember(claims, "pad", strings.Repeat("p", pad))
			claimsJSON, err := json.Marshal(c)
			if err != nil {
				return "", fmt.Errorf("marshal claims: %w", err)
			}
			if fixed+b64.EncodedLen(len(claimsJSON)) == size {
				return handToken(method, key, h, c)
			}
		}
	}
	return "", fmt.Errorf("no padding gives a token of %d bytes", size)
}

// withMember returns a copy of m with name set to value.
func withMember(m map[string]any, name string, value any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out[name] = value
	return out
}

// withoutMember returns a copy of m without name.
func withoutMember(m map[string]any, name string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != name {
			out[k] = v
		}
	}
	return out
}

// publicKeyPEM is the PKIX "PUBLIC KEY" PEM of key: the text an HS256 key-confusion attack
// uses as its HMAC secret, since verifiers often hold the RSA key in exactly this form.
func publicKeyPEM(key *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
