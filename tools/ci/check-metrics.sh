#!/usr/bin/env bash
# Validates a live /metrics scrape with Prometheus' own promtool (Debian package
# `prometheus`): a `se dev` server on a free loopback port, a few uploads and downloads,
# one scrape, `promtool check metrics`. Any parse error fails; of the lint findings only
# the one the contract forces is accepted: se_files_total is a gauge whose name CONTRACT
# §7 fixes, and promtool dislikes "_total" on gauges.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/ci/lib.sh
need_root
if ! command -v promtool >/dev/null 2>&1; then
	log "installing promtool (Debian package prometheus)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

log "building se"
CGO_ENABLED=0 go build -trimpath -o "$work/se" .
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && SE_PORT=$port SE_BIND_ADDR=127.0.0.1 exec ./se dev >dev.out 2>dev.err) &
pid=$!
base="https://127.0.0.1:$port"
for _ in $(seq 100); do
	curl -sf --cacert "$work/se-dev/tls.crt" "$base/health/ready" >/dev/null 2>&1 && break
	sleep 0.1
done
token=$(cd "$work" && ./se token)
c() { curl -sf --cacert "$work/se-dev/tls.crt" -H "Authorization: Bearer $token" "$@"; }
head -c 100000 /dev/urandom >"$work/payload.bin"
for i in 1 2 3; do c -F file=@"$work/payload.bin" -F 'tags=["ci"]' "$base/api/v1/files/upload" >"$work/up$i.json"; done
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["file_id"])' "$work/up1.json")
c -o /dev/null "$base/api/v1/files/$id/download"
c -o /dev/null -H 'Range: bytes=0-9' "$base/api/v1/files/$id/download"
c -o /dev/null "$base/api/v1/files?limit=10"
curl -s --cacert "$work/se-dev/tls.crt" -o /dev/null "$base/no/such/path" || true
curl -s --cacert "$work/se-dev/tls.crt" "$base/metrics" >"$work/scrape.txt"
log "scrape: $(grep -vc '^#' "$work/scrape.txt") samples in $(grep -c '^# TYPE' "$work/scrape.txt") families"
grep -E '^se_(http_requests_total|operations_total|files_total|storage_bytes)' "$work/scrape.txt" | head -20

set +e
out=$(promtool check metrics <"$work/scrape.txt" 2>&1)
rc=$?
set -e
echo "promtool check metrics: exit $rc"
[ -n "$out" ] && echo "$out"
case $rc in
0) ;;
3)
	unexpected=$(echo "$out" | grep -v '^se_files_total non-counter metrics should not have "_total" suffix$' || true)
	[ -z "$unexpected" ] || fail "promtool lint findings beyond the contract-mandated name: $unexpected"
	;;
*) fail "promtool could not parse the exposition" ;;
esac
log "check-metrics: OK"
