#!/usr/bin/env bash
# check-docker.sh: the Dockerfile lints clean and its image runs with nothing but its own files.
#
# There is no Docker engine here, so:
#   1. lint: tools/dockercheck runs BuildKit's Dockerfile linter (the rules of
#      `docker build --check`, experimental ones included, offline) and the project's image
#      policy (scratch, static build, numeric non-root USER, EXPOSE 8010, volumes,
#      exec-form HEALTHCHECK running the binary's own probe).
#   2. assemble: dockercheck replays the build stage's steps on the host against the
#      .dockerignore-filtered context, exactly as written in the Dockerfile, and lays out
#      the final stage's file tree (owners included) in an empty directory.
#   3. run: chroot into that tree as the image's USER with the image's ENV, start
#      ENTRYPOINT+CMD against a JWKS served on loopback, wait for /health/ready, run the
#      HEALTHCHECK command inside the chroot, call the public endpoints and one
#      authenticated one, then SIGTERM the process and expect a clean exit in time.
#   4. size: the image content (binary + CA bundle + passwd/group) and its gzip size.
#
# Usage (repo root, as root): tools/ci/check-docker.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/ci/lib.sh

readonly READY_WAIT=60 # seconds for /health/ready
start=$(date +%s)
need_root
apt_ensure ca-certificates curl coreutils
[ -f /etc/ssl/certs/ca-certificates.crt ] || fail "/etc/ssl/certs/ca-certificates.crt missing (ca-certificates)"

work=$(mktemp -d)
se_pid=""
jwks_pid=""
proc_mounted=""
cleanup() {
	if [ -n "$se_pid" ]; then kill -KILL "$se_pid" 2>/dev/null || true; fi
	if [ -n "$jwks_pid" ]; then kill -TERM "$jwks_pid" 2>/dev/null || true; fi
	if [ -n "$proc_mounted" ]; then
		umount "$work/build/rootfs/proc" 2>/dev/null || umount -l "$work/build/rootfs/proc" 2>/dev/null || true
	fi
	# --one-file-system: never descend into a /proc that failed to unmount.
	rm -rf --one-file-system "$work" 2>/dev/null || echo "note: left $work behind" >&2
}
trap cleanup EXIT

log "building and testing tools/dockercheck"
(
	cd tools/dockercheck
	[ -z "$(gofmt -l .)" ] || fail "gofmt: $(gofmt -l .)"
	go vet .
	go build -o "$work/dockercheck" .
	go test -count=1 .
)
dc="$work/dockercheck"

log "lint Dockerfile"
"$dc" lint -f Dockerfile || fail "Dockerfile lint"

log "assemble the image without Docker"
version=$(se_version)
"$dc" assemble -f Dockerfile -context . -work "$work/build" -build-arg "VERSION=$version" ||
	fail "replaying the Dockerfile failed"
root="$work/build/rootfs"
# shellcheck source=/dev/null
. "$work/build/image.env"
bin_size=$(stat -c %s "$root${IMAGE_ENTRYPOINT[0]}")
total=$(find "$root" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
gz=$(tar -C "$root" -cf - . | gzip -9 | wc -c)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "image size: $total bytes ($(mib "$total")) uncompressed, of which the binary $bin_size bytes;" \
	"gzip-compressed layer $gz bytes ($(mib "$gz"))"
"$root${IMAGE_ENTRYPOINT[0]}" version

log "fixtures: TLS pair, JWKS on loopback, token"
fixtures="$work/fixtures"
mkdir -p "$fixtures"
"$dc" testenv -dir "$fixtures" -max 10m &
jwks_pid=$!
for _ in $(seq 50); do
	[ -s "$fixtures/jwks.port" ] && break
	sleep 0.1
done
[ -s "$fixtures/jwks.port" ] || fail "JWKS server did not start"
jwks_port=$(cat "$fixtures/jwks.port")
uid=${IMAGE_USER%%:*}
gid=${IMAGE_USER##*:}
# The TLS files go into the tree the way a volume would bring them, readable by the user.
install -d -m 0750 -o "$uid" -g "$gid" "$root/run/se-check"
install -m 0640 -o "$uid" -g "$gid" "$fixtures/tls.crt" "$fixtures/tls.key" "$root/run/se-check/"
# The runtime, not the image, provides /proc; mount it when this machine allows.
mkdir -p "$root/proc"
if mount -t proc proc "$root/proc" 2>/dev/null; then proc_mounted=1; fi

port=$("$dc" freeport)
run_env=(
	"${IMAGE_ENV[@]}"
	"SE_PORT=$port"
	"SE_BIND_ADDR=127.0.0.1"
	"SE_STORAGE_ID=chroot-check"
	"SE_JWKS_URL=http://127.0.0.1:$jwks_port/jwks.json"
	"SE_TLS_CERT=/run/se-check/tls.crt"
	"SE_TLS_KEY=/run/se-check/tls.key"
	"SE_LOG_FORMAT=text"
	"SE_SHUTDOWN_TIMEOUT=10s"
)
chroot_bin=$(command -v chroot) || fail "chroot not found (coreutils)"
# in_image CMD...: runs CMD inside the tree as the image's user, with only the image's
# environment plus the run-time settings above (as `docker run -e` would add them).
in_image() { env -i "${run_env[@]}" "$chroot_bin" --userspec="$IMAGE_USER" "$root" "$@"; }

proc_state=absent
[ -n "$proc_mounted" ] && proc_state=mounted
log "chroot $root ${IMAGE_ENTRYPOINT[*]} ${IMAGE_CMD[*]} (user $IMAGE_USER, port $port, /proc $proc_state)"
# exec, so that $! is the server's own PID (env and chroot exec in turn) and the uid
# and signal checks below reach the server itself.
(exec env -i "${run_env[@]}" "$chroot_bin" --userspec="$IMAGE_USER" "$root" \
	"${IMAGE_ENTRYPOINT[@]}" "${IMAGE_CMD[@]}") >"$work/se.log" 2>&1 &
se_pid=$!
show_log() {
	echo "--- server log (last 40 lines)"
	tail -n 40 "$work/se.log"
}

url="https://127.0.0.1:$port"
ready=""
for _ in $(seq $((READY_WAIT * 5))); do
	if ! kill -0 "$se_pid" 2>/dev/null; then
		show_log
		fail "server exited before it was ready"
	fi
	code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$url/health/ready" || true)
	if [ "$code" = 200 ]; then
		ready=1
		break
	fi
	sleep 0.2
done
[ -n "$ready" ] || {
	show_log
	fail "/health/ready not 200 within ${READY_WAIT}s (last: $code)"
}
echo "ready after $(elapsed "$start") since the check started"

# The process runs as the image's user, not as root.
run_uid=$(awk '/^Uid:/ { print $2 }' "/proc/$se_pid/status")
[ "$run_uid" = "$uid" ] || fail "server runs as uid $run_uid, image USER is $uid"

log "HEALTHCHECK ${IMAGE_HEALTHCHECK[*]} inside the chroot"
in_image "${IMAGE_HEALTHCHECK[@]}" || fail "healthcheck command exited $?"
echo "healthcheck: exit 0"

log "endpoints"
expect() { # expect STATUS PATH [curl args...]
	local want=$1 path=$2 got
	shift 2
	got=$(curl -sk -o "$work/body" -w '%{http_code}' --max-time 5 "$@" "$url$path")
	[ "$got" = "$want" ] || {
		show_log
		fail "GET $path: $got, want $want ($(head -c 300 "$work/body"))"
	}
	echo "GET $path -> $got"
}
expect 200 /health/live
expect 200 /health/ready
expect 200 /metrics
expect 200 /api/v1/info
grep -q '"storage_id":"chroot-check"' "$work/body" || fail "/api/v1/info lacks storage_id chroot-check: $(head -c 300 "$work/body")"
grep -q "\"version\":\"$version\"" "$work/body" || fail "/api/v1/info does not report the stamped version $version"
expect 401 /api/v1/files
expect 200 /api/v1/files -H "Authorization: Bearer $(cat "$fixtures/token")"
# The SE wrote its state into the image's volumes, as the image's user.
[ -n "$(find "$root${IMAGE_VOLUMES[0]}" -mindepth 1 -user "$uid" -print -quit)" ] ||
	fail "nothing written by uid $uid under ${IMAGE_VOLUMES[0]}"

log "SIGTERM"
kill -TERM "$se_pid"
stopped=""
for _ in $(seq 75); do # 15 s: SE_SHUTDOWN_TIMEOUT=10s plus slack
	if ! kill -0 "$se_pid" 2>/dev/null; then
		stopped=1
		break
	fi
	sleep 0.2
done
[ -n "$stopped" ] || fail "server still running 15s after SIGTERM"
status=0
wait "$se_pid" || status=$?
se_pid=""
[ "$status" -eq 0 ] || {
	show_log
	fail "server exited $status after SIGTERM, want 0"
}
echo "stopped cleanly (exit 0)"

echo "check-docker: PASS (image ${total} bytes, gzip ${gz} bytes, $(elapsed "$start"))"
