#!/bin/sh
# `make run`: start rosterd in the foreground on a throwaway state under DIR
# (default .dev/), with SCIM on https://127.0.0.1:8443 behind a self-signed
# certificate, and say what to try next.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dev=$(cd "$here" && mkdir -p "${1:-.dev}" && cd "${1:-.dev}" && pwd)
config="$dev/rosterd.toml"
tls="$dev/tls"

if [ ! -e "$tls/cert.pem" ]; then
    mkdir -p "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null
fi
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

[http]
listen = "127.0.0.1:8443"
tls_cert = "$tls/cert.pem"
tls_key = "$tls/key.pem"
TOML
fi
mkdir -p "$dev/state" "$dev/run"

# rosterd will not serve HTTPS as root; as root, run it as nobody, the way the
# packaged service runs as its own unprivileged user.
sudo=""
run_as=""
if [ "$(id -u)" -eq 0 ]; then
    chown -R nobody:nogroup "$dev/state" "$dev/run" "$tls/key.pem"
    run_as="setpriv --reuid=nobody --regid=nogroup --clear-groups"
else
    sudo="sudo "
fi
ctl="$here/.venv/bin/rosterctl --config $config"
view="$sudo$here/tools/roster-view --socket $dev/run/nss.sock --"
cat <<MSG

rosterd is starting with $config (state in $dev/state).
In another terminal, try:

  $ctl user add alice --full-name "Alice Liddell"
  $ctl group add analysts
  $ctl group add-member analysts alice
  $view getent passwd alice
  $view id alice

roster-view runs a command in a private mount namespace whose nsswitch.conf
reads 'passwd: files roster', so the real glibc tools see rosterd's users
without any change to this host's /etc.

SCIM, as an identity provider would push it:

  TOKEN=\$($sudo$ctl token generate "try-out")
  curl --cacert $tls/cert.pem -H "Authorization: Bearer \$TOKEN" \\
       -H 'Content-Type: application/scim+json' \\
       -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@example.com"}' \\
       https://127.0.0.1:8443/scim/v2/Users
  $view getent passwd bob

Stop rosterd with Ctrl-C.

MSG
exec $run_as "$here/.venv/bin/rosterd" --config "$config"
