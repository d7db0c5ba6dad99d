#!/usr/bin/env bash
# Installs what the benchmark's peers need beyond the Herald stack (redis-server, nginx with the
# stream module): the Nchan nginx module. Debian/Ubuntu; run as root or with sudo.
# Socket.IO and its Redis adapter come from npm (`npm ci` at the repo root).
set -euo pipefail

modules_dir=$(nginx -V 2>&1 | sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p')
modules_dir=${modules_dir:-/usr/lib/nginx/modules}

if [ -f "$modules_dir/ngx_nchan_module.so" ]; then
  echo "nchan: $modules_dir/ngx_nchan_module.so already installed"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y --no-install-recommends libnginx-mod-nchan
# The package enables the module for the system nginx (modules-enabled); the benchmark runs its own
# nginx with its own config and prefix, so the system service is left as it was.
echo "nchan: installed $modules_dir/ngx_nchan_module.so"
