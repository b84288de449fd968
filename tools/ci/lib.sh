# shellcheck shell=bash
# Shared helpers for tools/ci/check-*.sh. Source it; do not run it.
#
# The check scripts run from the repository root as root on a fresh Debian machine that
# reaches only Debian's archive and the Go module proxy, so every tool they use is either
# installed here from apt (quietly, only when missing) or built from Go modules.

set -euo pipefail

# Go lives in /usr/local/go on the CI machines; a non-login shell may not have it on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

# log prints a step line; fail prints an error and exits non-zero.
log() { printf '== %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# need_root: chroot, chown and apt need it.
need_root() {
	[ "$(id -u)" -eq 0 ] || fail "run as root (CI does)"
}

# apt_ensure PKG...: installs the Debian packages that are not installed yet.
apt_ensure() {
	local missing=() pkg
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	log "apt-get install ${missing[*]}"
	need_root
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# se_version: the version string stamped into binaries built by the checks.
se_version() {
	git describe --tags --always --dirty 2>/dev/null || echo dev
}

# build_se OUT: builds the SE binary the way the Dockerfile does.
build_se() {
	command -v go >/dev/null 2>&1 || fail "go not found"
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(se_version)" -o "$1" .
}

# elapsed START: seconds since START (from `date +%s`).
elapsed() { echo "$(($(date +%s) - $1))s"; }
