#!/usr/bin/env bash
# Start OpenSSH's sshd on loopback for the SFTP sync tests, as the current user, with its own
# host key, one authorised user key and a config in DIR. Idempotent: installs openssh-server
# with apt only if absent, reuses DIR's keys, and leaves a running sshd (DIR/sshd.pid) alone.
# Usage: .ci/sshd-up.sh DIR PORT      prints "user key" lines once sshd listens.
set -euo pipefail
dir=${1:?usage: sshd-up.sh DIR PORT}
port=${2:?usage: sshd-up.sh DIR PORT}
if [ ! -x /usr/sbin/sshd ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq openssh-server >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null && apt-get install -y -qq openssh-server >/dev/null; }
fi
mkdir -p "$dir" /run/sshd
chmod 700 "$dir"
[ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
[ -f "$dir/user_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/user_ed25519"
cp "$dir/user_ed25519.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
cat > "$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
CONF
if [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
    echo "$(id -un) $dir/user_ed25519"; exit 0
fi
/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "$(id -un) $dir/user_ed25519"; exit 0
    fi
    sleep 0.1
done
echo "sshd did not listen on 127.0.0.1:$port (see $dir/sshd.log)" >&2
exit 1
