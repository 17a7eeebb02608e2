#!/bin/sh
# Runs inside `unshare -m`: installs the .deb with apt into an overlay of the cached
# debootstrap tree, starts the daemon from its unit's ExecStart as rosterd, adds a
# user, resolves it through the installed module, runs doctor, then purges.
# Usage: deb_install.sh LOWER WORK DEB; outputs land in WORK/out/.
set -eu
LOWER=$1 T=$2 DEB=$3
R=$T/root OUT=$T/out
mkdir -p "$R" "$T/upper" "$T/work" "$OUT"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$T/upper,workdir=$T/work" "$R"
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
cp /etc/resolv.conf "$R/etc/resolv.conf"
cp "$DEB" "$R/tmp/rosterd.deb"
cp "$R/etc/nsswitch.conf" "$OUT/nsswitch.before"
in_root() { chroot "$R" env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

in_root apt-get update -qq > "$OUT/apt-update.log" 2>&1
in_root apt-get install -y -q /tmp/rosterd.deb > "$OUT/apt-install.log" 2>&1
cp "$R/etc/nsswitch.conf" "$OUT/nsswitch.installed"
cp "$R/etc/pam.d/common-account" "$OUT/common-account"
# A reinstall configures again: nsswitch.conf must not gain a second roster.
in_root apt-get install -y -q --reinstall /tmp/rosterd.deb >> "$OUT/apt-install.log" 2>&1
cp "$R/etc/nsswitch.conf" "$OUT/nsswitch.reinstalled"

# What systemd would do for the unit: its directories, then ExecStart as User=.
exec_start=$(sed -n 's/^ExecStart=//p' "$R/lib/systemd/system/rosterd.service")
in_root install -d -o rosterd -g rosterd -m 0755 /run/rosterd
in_root install -d -o rosterd -g rosterd -m 0700 /var/lib/rosterd
# shellcheck disable=SC2086
# (chroot and setpriv exec, so $! is the daemon itself.)
chroot "$R" setpriv --reuid=rosterd --regid=rosterd --init-groups $exec_start \
    > "$OUT/daemon.log" 2>&1 &
daemon=$!
i=0
until [ -S "$R/run/rosterd/admin.sock" ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "daemon did not start" >&2; exit 1; }
    kill -0 $daemon || { echo "daemon exited" >&2; exit 1; }
    sleep 0.1
done
echo "$(stat -c %u "/proc/$daemon") $(in_root id -u rosterd)" > "$OUT/daemon-user.txt"
in_root rosterctl user add alice --full-name "Alice Liddell" > "$OUT/user-add.txt" 2>&1
in_root getent passwd alice > "$OUT/getent.txt" 2>&1 || true
in_root id alice > "$OUT/id.txt" 2>&1 || true
rc=0; in_root rosterctl doctor > "$OUT/doctor.txt" 2>&1 || rc=$?
echo $rc > "$OUT/doctor.rc"
kill $daemon; wait $daemon || true

in_root apt-get purge -y -q rosterd > "$OUT/apt-purge.log" 2>&1
cp "$R/etc/nsswitch.conf" "$OUT/nsswitch.purged"
cp "$R/etc/pam.d/common-account" "$OUT/common-account.purged"
ls "$R/usr/lib/x86_64-linux-gnu/" > "$OUT/libdir.purged"
