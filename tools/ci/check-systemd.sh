#!/usr/bin/env bash
# check-systemd.sh: se.service is a valid, hardened systemd unit.
#
#   1. `systemd-analyze verify` passes with no message at all (it exits 0 on unknown keys,
#      so any output is treated as a failure).
#   2. `systemd-analyze security --offline=true` rates the unit at 1.5 or lower.
#   3. The unit keeps the promises the README makes: dedicated user, EnvironmentFile,
#      state directories for data and WAL, restart policy, TimeoutStopSec longer than
#      SE_SHUTDOWN_TIMEOUT, empty capability bounding set, no new privileges.
#
# verify needs the ExecStart binary to exist, so both analyses run with --root= on a
# throw-away tree: the unit as /etc/systemd/system/storage-element.service, a copy of the
# host's stock units (sysinit.target and friends, which verify loads as dependencies) and
# the real binary at /usr/local/bin/se, built from this repository (or $SE_BIN when set).
# Nothing is installed on the host but the systemd package.
#
# Usage (repo root, as root): tools/ci/check-systemd.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/ci/lib.sh

readonly MAX_SCORE=1.5
readonly UNIT=se.service
start=$(date +%s)

apt_ensure systemd
[ -f "$UNIT" ] || fail "$UNIT not found"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/usr/local/bin"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
install -m 0644 "$UNIT" "$root/etc/systemd/system/storage-element.service"
if [ -n "${SE_BIN:-}" ]; then
	install -m 0755 "$SE_BIN" "$root/usr/local/bin/se"
else
	log "building se"
	build_se "$root/usr/local/bin/se"
fi

# The unit's ExecStart must be the path the binary was placed at.
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT")
[ "$exec_start" = /usr/local/bin/se ] || fail "ExecStart binary is $exec_start, expected /usr/local/bin/se"

log "systemd-analyze verify ($(systemd-analyze --version | head -1))"
if ! out=$(systemd-analyze verify --root="$root" /etc/systemd/system/storage-element.service 2>&1) || [ -n "$out" ]; then
	printf '%s\n' "$out"
	fail "systemd-analyze verify reported problems"
fi
echo "verify: clean"

log "systemd-analyze security --offline=true"
report=$(systemd-analyze security --offline=true --no-pager --root="$root" \
	/etc/systemd/system/storage-element.service 2>&1) || true
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || {
	printf '%s\n' "$report"
	fail "no exposure level in systemd-analyze output"
}
echo "settings not at their best (weight):"
printf '%s\n' "$report" | grep '✗' | sed 's/  */ /g; s/^/  /' || true
echo "overall exposure level: $score (limit $MAX_SCORE)"
awk -v s="$score" -v m="$MAX_SCORE" 'BEGIN { exit !(s <= m) }' || fail "exposure $score > $MAX_SCORE"

log "unit policy"
# value KEY: the last value the unit assigns to KEY (later assignments win in systemd).
value() { sed -n "s/^$1=//p" "$UNIT" | tail -1; }
# seconds DURATION: converts the systemd/Go durations used here (45s, 2min, 1m, 1h) to seconds.
seconds() {
	local d=$1
	case "$d" in
	*min) echo $((${d%min} * 60)) ;;
	*ms) echo 0 ;;
	*s) echo "${d%s}" ;;
	*m) echo $((${d%m} * 60)) ;;
	*h) echo $((${d%h} * 3600)) ;;
	*) echo "$d" ;;
	esac
}
problems=0
problem() {
	echo "  $*"
	problems=$((problems + 1))
}
user=$(value User)
if [ -z "$user" ] || [ "$user" = root ]; then problem "User= must name a dedicated non-root user"; fi
[ -n "$(value EnvironmentFile)" ] || problem "EnvironmentFile= missing"
state=$(value StateDirectory)
for d in data wal; do
	[[ " $state " == *"/$d "* ]] || problem "StateDirectory= lacks a $d directory"
done
env_line=$(grep '^Environment=' "$UNIT" | tr '\n' ' ')
[[ "$env_line" == *"SE_DATA_DIR=/var/lib/"*"/data"* ]] || problem "SE_DATA_DIR default not in the state directory"
[[ "$env_line" == *"SE_WAL_DIR=/var/lib/"*"/wal"* ]] || problem "SE_WAL_DIR default not in the state directory"
case "$(value Restart)" in on-failure | always | on-abnormal) ;; *) problem "Restart= policy missing" ;; esac
shutdown=$(printf '%s\n' "$env_line" | sed -n 's/.*SE_SHUTDOWN_TIMEOUT=\([^ ]*\).*/\1/p')
shutdown_s=$(seconds "${shutdown:-30s}")
stop_s=$(seconds "$(value TimeoutStopSec)")
[ "${stop_s:-0}" -gt "$shutdown_s" ] || problem "TimeoutStopSec (${stop_s:-unset}s) must exceed SE_SHUTDOWN_TIMEOUT (${shutdown_s}s)"
[ "$(value NoNewPrivileges)" = yes ] || problem "NoNewPrivileges=yes missing"
grep -q '^CapabilityBoundingSet=$' "$UNIT" || problem "CapabilityBoundingSet= must be empty"
[ -n "$(value SystemCallFilter)" ] || problem "SystemCallFilter= missing"
[ -n "$(value RestrictAddressFamilies)" ] || problem "RestrictAddressFamilies= missing"
[ "$problems" -eq 0 ] || fail "$problems unit policy problem(s)"
echo "unit policy: ok (user $user, TimeoutStopSec ${stop_s}s > SE_SHUTDOWN_TIMEOUT ${shutdown_s}s)"

echo "check-systemd: PASS (exposure $score, $(elapsed "$start"))"
