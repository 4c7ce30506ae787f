#!/usr/bin/env bash
# Install the system programs the test suite needs, when they are missing:
#   redis-server     (Debian package redis-server)  integration tests' broker
#   docker-compose   (Debian package docker-compose) tests/test_compose.py validates the stack
#   initdb/postgres  (Debian package postgresql)     integration tests' database
#   /usr/bin/chromium (Debian package chromium)      browser tests drive it with Playwright,
#                                                    which must never download a browser of its own
# Idempotent: when everything is present it changes nothing and runs no apt-get at all.
set -euo pipefail

log() { echo "install-system-deps: $*"; }
die() { echo "install-system-deps: ERROR: $*" >&2; exit 1; }

have_initdb() {
    command -v initdb >/dev/null 2>&1 && return 0
    if command -v pg_config >/dev/null 2>&1; then
        local bindir
        bindir="$(pg_config --bindir 2>/dev/null || true)"
        [[ -n "$bindir" && -x "$bindir/initdb" ]] && return 0
    fi
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
have_initdb || missing+=(postgresql)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)

if ((${#missing[@]} == 0)); then
    log "redis-server, docker-compose, PostgreSQL (initdb) and chromium are present; nothing to do"
    exit 0
fi
log "missing: ${missing[*]}"

if [[ "$(id -u)" -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
    log "not root: using sudo"
else
    die "not root and sudo is unavailable; install these Debian packages as root: ${missing[*]}"
fi
command -v apt-get >/dev/null 2>&1 \
    || die "apt-get not found; install these packages with your system's manager: ${missing[*]}"

log "+ apt-get update"
"${sudo[@]}" apt-get update
log "+ apt-get install -y --no-install-recommends ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"

# Check the result rather than trusting apt-get's exit code alone.
command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after install"
command -v docker-compose >/dev/null 2>&1 || die "docker-compose still missing after install"
have_initdb || die "initdb still missing after installing postgresql"
[[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium still missing after installing chromium"
log "done: ${missing[*]} installed"
