#!/usr/bin/env bash
# check-bench.sh: the performance suite keeps compiling and running (issue 6).
#
#   1. Every Go benchmark of the SE package runs exactly once (-benchtime=1x): the
#      numbers are not looked at here (the box is shared and noisy; BENCHMARKS.md holds a
#      real run), only that each benchmark still builds, sets up and completes.
#   2. tools/loadtool (its own Go module, never imported by the product) passes go vet
#      and its unit tests (seed format, token signing, percentiles, table verdicts).
#   3. A smoke run of the load tool (-quick: a few thousand seeded files, a 64 MiB
#      transfer, one-second loads) drives a freshly built SE end to end, which fails if
#      the seed format or the API drifts from what the tool expects. It is not the
#      measurement: the full run (N=100k, 1 GiB) is manual, see BENCHMARKS.md.
#      LOADTOOL_SMOKE=0 skips it.
#
# Usage (repo root): tools/ci/check-bench.sh          # about 1-2 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/ci/lib.sh

start=$(date +%s)

log "go test -run '^\$' -bench . -benchtime=1x ."
go test -run '^$' -bench . -benchtime=1x -count=1 -timeout 10m .

log "tools/loadtool: go vet, go test"
(cd tools/loadtool && go vet ./... && go test -count=1 ./...)

if [ "${LOADTOOL_SMOKE:-1}" != 0 ]; then
	log "tools/loadtool: smoke run (-quick)"
	(cd tools/loadtool && go run . -src ../.. -quick) || fail "the load tool's smoke run failed (see above)"
fi
echo "check-bench: OK in $(elapsed "$start")"
