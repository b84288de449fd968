#!/usr/bin/env bash
# check-jwt-interop.sh: the SE's handwritten RS256 verifier (jwt.go, jwks.go) and
# github.com/golang-jwt/jwt/v5 agree on a table of valid and hostile tokens.
#
#   1. interop/jwt (its own Go module, never imported by the product) is gofmt-clean,
#      passes go vet and its unit tests (the hostile tokens are broken exactly as named,
#      the table's declarations match what the library computes).
#   2. The SE is built from the repository root, and jwt-interop starts it twice on
#      loopback ports (once with SE_JWT_ISSUER/SE_JWT_AUDIENCE) with its own TLS
#      certificate and an http JWKS on 127.0.0.1, sends every token to GET /api/v1/files
#      and compares 200/401 with the library's verdict plus the SE's documented extra
#      rules (listed at the top of interop/jwt/main.go).
#
# Prints one line per case (case, library, reference, SE, agree/DISAGREE) and a summary;
# exits non-zero on any disagreement or set-up failure.
# Usage (repo root): tools/ci/check-jwt-interop.sh [-v]   (-v adds the library's reasons)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/ci/lib.sh

start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

log "interop/jwt: gofmt, go vet, go test"
unformatted=$(cd interop/jwt && gofmt -l .)
[ -z "$unformatted" ] || fail "gofmt needed in interop/jwt: $unformatted"
(cd interop/jwt && go vet ./... && go test -count=1 ./...)

log "building se"
CGO_ENABLED=0 go build -trimpath -o "$tmp/se" .

log "building jwt-interop"
(cd interop/jwt && go build -o "$tmp/jwt-interop" .)

log "jwt-interop"
"$tmp/jwt-interop" -bin "$tmp/se" -timeout 3m "$@" ||
	fail "the SE and golang-jwt disagree, or the check could not run (see above)"
echo "check-jwt-interop: OK in $(elapsed "$start")"
