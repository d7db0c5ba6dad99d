#!/usr/bin/env bash
# The one place that installs Herald's system dependencies (Debian/Ubuntu packages):
#
#   infra/local/bin/ensure-deps.sh [redis] [nginx] [haproxy] [chromium] [curl]    (default: redis nginx)
#
#   redis     redis-server                  (package redis-server; REDIS_SERVER_BIN overrides)
#   nginx     nginx with the stream module  (nginx libnginx-mod-stream; NGINX_BIN, NGINX_STREAM_MODULE)
#   haproxy   haproxy 2.2 or later          (haproxy; HAPROXY_BIN)
#   chromium  /usr/bin/chromium             (chromium; the browser test drives it)
#   curl      curl                          (curl; the docs' examples use it, test/system/docs-examples)
#
# Used by `npm start` (the launcher, infra/local/src/deps.ts), `npm test` (pretest), .ci/run and the
# browser test. When everything asked for is present it prints nothing and exits 0 (a few
# `command -v` and one `nginx -V`: about 20 ms). Otherwise, as root or with passwordless sudo, it
# says what it runs and runs `apt-get install -y <packages>` (then `apt-get update` and once more
# if that fails); without either, or with HERALD_NO_INSTALL=1, it prints the one command to run
# and exits 1. Exit 2: bad usage.
set -euo pipefail

# nginx and haproxy live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { echo "ensure-deps: $*" >&2; }

is_exec() { [ -f "$1" ] && [ -x "$1" ]; }

# A binary: its override variable when set (it must then be executable), else PATH.
find_bin() { # name override-value
  if [ -n "${2:-}" ]; then is_exec "$2" && echo "$2"; else command -v "$1" 2>/dev/null; fi
}

have_redis() { find_bin redis-server "${REDIS_SERVER_BIN:-}" >/dev/null; }

# The same test as nginxInfo() in infra/local/src/nginx.ts: compiled in, or a dynamic module.
have_nginx() {
  local bin info modules
  bin=$(find_bin nginx "${NGINX_BIN:-}") || return 1
  info=$("$bin" -V 2>&1) || return 1
  grep -Eq -- '--with-stream( |$)' <<<"$info" && return 0
  modules=$(grep -oE -- '--modules-path=[^ ]+' <<<"$info" | cut -d= -f2 || true)
  for f in "${NGINX_STREAM_MODULE:-}" "${modules:-/usr/lib/nginx/modules}/ngx_stream_module.so" \
    /usr/lib/nginx/modules/ngx_stream_module.so /usr/share/nginx/modules/ngx_stream_module.so; do
    [ -n "$f" ] && [ -f "$f" ] && return 0
  done
  return 1
}

# 2.2 or later, as haproxyInfo() in infra/local/src/haproxy.ts requires.
have_haproxy() {
  local bin version major minor
  bin=$(find_bin haproxy "${HAPROXY_BIN:-}") || return 1
  version=$("$bin" -v 2>/dev/null | grep -oE 'version [0-9]+\.[0-9]+' | head -n1 | cut -d' ' -f2) || return 1
  major=${version%%.*}
  minor=${version#*.}
  [ -n "$major" ] && { [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 2 ]; }; }
}

have_chromium() { is_exec /usr/bin/chromium; }

have_curl() { command -v curl >/dev/null 2>&1; }

packages_of() {
  case "$1" in
  redis) echo redis-server ;;
  nginx) echo nginx libnginx-mod-stream ;;
  haproxy) echo haproxy ;;
  chromium) echo chromium ;;
  curl) echo curl ;;
  esac
}

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(redis nginx)
missing=()
packages=()
for dep in "${wanted[@]}"; do
  case "$dep" in
  redis | nginx | haproxy | chromium | curl) ;;
  *)
    say "unknown dependency \"$dep\" (known: redis nginx haproxy chromium curl)"
    exit 2
    ;;
  esac
  if ! "have_$dep"; then
    missing+=("$dep")
    read -ra pkgs <<<"$(packages_of "$dep")"
    packages+=("${pkgs[@]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

command_line="sudo apt-get install -y ${packages[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  say "missing: ${missing[*]}; this is not Debian/Ubuntu (no apt-get): install ${packages[*]} with your package manager"
  exit 1
fi
if [ -n "${HERALD_NO_INSTALL:-}" ] && [ "${HERALD_NO_INSTALL}" != 0 ]; then
  say "missing: ${missing[*]} (HERALD_NO_INSTALL is set, so not installing). Run:"
  echo "  $command_line" >&2
  exit 1
elif [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  say "missing: ${missing[*]}, and this is neither root nor allowed passwordless sudo. Run:"
  echo "  $command_line" >&2
  exit 1
fi

# Bounded: a stuck mirror must not hang `npm start` or `npm test` (Chromium is the largest, about
# 100 MB; 10 minutes leaves room for a slow mirror).
apt() {
  say "running: ${sudo[*]}${sudo:+ }apt-get $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -q "$@" </dev/null >&2
}
say "missing: ${missing[*]}; installing ${packages[*]}"
# The package lists there are first (fast when they are fresh), then once more after an update.
if ! apt install -y "${packages[@]}"; then
  apt update
  apt install -y "${packages[@]}"
fi

still=()
for dep in "${missing[@]}"; do "have_$dep" || still+=("$dep"); done
if [ ${#still[@]} -gt 0 ]; then
  say "still missing after apt-get: ${still[*]}"
  exit 1
fi
say "installed ${packages[*]}"
