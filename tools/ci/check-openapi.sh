#!/usr/bin/env bash
# check-openapi.sh: openapi.yaml and the SE binary describe the same API.
#
#   1. tools/openapicheck (its own Go module, never imported by the product) passes
#      go vet and its unit tests (route-table parsing, the validator's strictness).
#   2. The SE is built from the repository root the way the Dockerfile does (or taken
#      from $SE_BIN), and openapicheck validates the document, diffs routes() in the
#      source with the documented operations, starts the binary on loopback ports with
#      its own TLS certificate and JWKS, drives every endpoint and validates every real
#      response (status, headers, body) against openapi.yaml.
#
# Output ends with "responses validated: N", the per-status tally and the run time.
# Usage (repo root): tools/ci/check-openapi.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/ci/lib.sh

start=$(date +%s)
[ -f openapi.yaml ] || fail "openapi.yaml not found"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

log "tools/openapicheck: go vet, go test"
(cd tools/openapicheck && go vet ./... && go test -count=1 ./...)

log "building openapicheck"
(cd tools/openapicheck && go build -o "$tmp/openapicheck" .)

if [ -n "${SE_BIN:-}" ]; then
	bin=$SE_BIN
else
	log "building se"
	build_se "$tmp/se"
	bin=$tmp/se
fi

log "openapicheck"
"$tmp/openapicheck" -bin "$bin" -spec openapi.yaml -src . -timeout 5m ||
	fail "the SE and openapi.yaml disagree (see above)"
echo "check-openapi: OK in $(elapsed "$start")"
