#!/bin/sh
# `make run`: start rosterd in the foreground on a throwaway state under DIR
# (default .dev/), and say what to try next.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dev=$(cd "$here" && mkdir -p "${1:-.dev}" && cd "${1:-.dev}" && pwd)
config="$dev/rosterd.toml"
if [ ! -e "$config" ]; then
    cat > "$config" <<TOML
# Written by 'make run' for a local try-out; edit freely, or delete to start over.
[paths]
state_dir = "$dev/state"
runtime_dir = "$dev/run"

[provisioning]
start_uid = 20000
start_gid = 20000
home_root = "$dev/home"
TOML
fi
ctl="$here/.venv/bin/rosterctl --config $config"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo "
view="$sudo$here/tools/roster-view --socket $dev/run/nss.sock --"
cat <<MSG

rosterd is starting with $config (state in $dev/state).
In another terminal, try:

  $ctl user add alice --full-name "Alice Liddell"
  $ctl group add analysts
  $ctl group add-member analysts alice
  $view getent passwd alice
  $view id alice
  $view getent group analysts

roster-view runs a command in a private mount namespace whose nsswitch.conf
reads 'passwd: files roster', so the real glibc tools see rosterd's users
without any change to this host's /etc. Stop rosterd with Ctrl-C.

MSG
exec "$here/.venv/bin/rosterd" --config "$config"
