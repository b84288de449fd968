#!/usr/bin/env bash
# check-helm.sh: the storage-element Helm chart lints, renders and deploys what it promises.
#
# Builds tools/helmcheck (its own Go module: Helm v4 SDK, k8s.io/api, cert-manager, Gateway
# API and prometheus-operator API types, all from the Go module proxy) and runs it against
# helm/storage-element and config.go. helmcheck runs `helm lint --strict` and
# `helm template` in-process for the default values, values-replicated.yaml and all
# optional features (standalone and replicated), decodes every rendered object strictly
# into its Go API type and asserts env names, probes, port, security contexts and the
# replicated storage layout; see tools/helmcheck/main.go.
#
# Usage (repo root): tools/ci/check-helm.sh
# HELMCHECK_DUMP=DIR also writes each scenario's rendered manifests to DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/ci/lib.sh

start=$(date +%s)
command -v go >/dev/null 2>&1 || fail "go not found"
[ -f config.go ] || fail "config.go not found (it declares var configVariables)"

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

log "building and testing tools/helmcheck"
(
	cd tools/helmcheck
	[ -z "$(gofmt -l .)" ] || fail "gofmt: $(gofmt -l .)"
	go vet .
	go build -o "$bin/helmcheck" .
	go test -count=1 .
)
echo "built and tested in $(elapsed "$start")"

log "helmcheck"
args=(-chart helm/storage-element -config config.go -testdata tools/helmcheck/testdata)
[ -n "${HELMCHECK_DUMP:-}" ] && args+=(-dump "$HELMCHECK_DUMP")
"$bin/helmcheck" "${args[@]}" || fail "helmcheck found problems"

echo "check-helm: PASS ($(elapsed "$start"))"
