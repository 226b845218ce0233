#!/usr/bin/env bash
# Start a one-machine Slurm cluster (munged, slurmctld, slurmd) on loopback, for the tests and
# CI. Idempotent: daemons already answering are left alone. Needs root and Debian's
# slurm-wlm and munge packages. Prints the SLURM_CONF to export for sbatch, squeue and friends.
#
#   DEPLOY_SLURM_DIR   where the config, state and logs go (default /tmp/deploy-slurm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${DEPLOY_SLURM_DIR:-/tmp/deploy-slurm}"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"
mkdir -p "$dir/state" "$dir/spool"

# munged: one per machine, at its default socket (sbatch and the daemons find it there).
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.2
  done
  munge -n </dev/null | unmunge >/dev/null || { echo "munged did not start" >&2; exit 1; }
fi

host="$(hostname -s)"
sed -e "s|@HOST@|$host|g" -e "s|@DIR@|$dir|g" -e "s|@CTLD_PORT@|${DEPLOY_SLURMCTLD_PORT:-6817}|g" \
    -e "s|@SLURMD_PORT@|${DEPLOY_SLURMD_PORT:-6818}|g" \
    -e "s|@SLURMD_PORT2@|$(( ${DEPLOY_SLURMD_PORT:-6818} + 1 ))|g" \
    "$here/slurm.conf.in" >"$conf.new"
mv "$conf.new" "$conf"
sed -e "s|@DIR@|$dir|g" "$here/gres.conf" >"$dir/gres.conf"
for gpu in 0 1 2 3 4 5 6 7; do : >>"$dir/gpu$gpu"; done

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$dir/slurmctld.pid" || /usr/sbin/slurmctld -f "$conf"
for node in deploy-test-node1 deploy-test-node2; do
  mkdir -p "$dir/spool/$node"
  running "$dir/slurmd-$node.pid" || /usr/sbin/slurmd -f "$conf" -N "$node"
done

# Ready when both nodes are idle (or already running jobs).
for _ in $(seq 1 120); do
  states="$(sinfo -h -N -o '%T' 2>/dev/null || true)"
  if [ "$(grep -cE '^(idle|mixed|allocated)' <<<"$states")" -eq 2 ]; then
    echo "SLURM_CONF=$conf"
    exit 0
  fi
  if grep -qE '^(down|drain)' <<<"$states"; then
    scontrol update nodename=deploy-test-node[1-2] state=resume 2>/dev/null || true
  fi
  sleep 0.5
done
echo "slurm did not become ready; see $dir/slurmctld.log and $dir/slurmd.log" >&2
sinfo -N >&2 || true
exit 1
