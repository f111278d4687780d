#!/usr/bin/env bash
# A real single-node SLURM on localhost, to try sweeps on one machine and for the `slurm` tests.
#
#   scripts/local_slurm.sh start    install what is missing (Debian/Ubuntu, root), write the config, start the
#                                   daemons that are down, wait for an idle node; prints the partition name
#   scripts/local_slurm.sh stop     cancel jobs, stop the daemons by their pid files
#   scripts/local_slurm.sh status   daemons, sinfo, squeue
#
# Daemons: munged, MariaDB + slurmdbd (accounting, so `sacct` works: submitit polls it to notice jobs that SLURM
# killed), slurmctld, slurmd. No systemd, no cgroups: everything runs as root in the background.
# Idempotent: a second `start` with the same settings is a no-op (~0.1 s); changed settings restart slurmctld+slurmd.
#
# Settings (environment):
#   LOCAL_SLURM_DIR        state, logs, pid files (default /var/tmp/mfti-local-slurm)
#   LOCAL_SLURM_PARTITION  partition name (default debug)
#   LOCAL_SLURM_CPUS       CPUs the node advertises (default: the real count); more than real = oversubscribe
#   LOCAL_SLURM_MEM_MB     memory the node advertises (default: 95% of the real memory)
#   LOCAL_SLURM_GPUS       fake GPUs (gres/gpu on /dev/null-like char devices) so GPU presets can be submitted;
#                          there is no GPU behind them: jobs must still run with trainer.accelerator=cpu (default 0)
#   LOCAL_SLURM_ACCOUNTING 1 (default) = slurmdbd + MariaDB; 0 = none (submitit then hangs on killed jobs)
#   LOCAL_SLURM_PURGE      stop only: 1 = also delete the state dir and the accounting database
# Exit status of start: 0 ready, 3 not possible here (not root, no apt-get): the reason is on stderr.
set -euo pipefail

DIR=${LOCAL_SLURM_DIR:-/var/tmp/mfti-local-slurm}
PARTITION=${LOCAL_SLURM_PARTITION:-debug}
ACCOUNTING=${LOCAL_SLURM_ACCOUNTING:-1}
GPUS=${LOCAL_SLURM_GPUS:-0}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
DBCONF=$CONF_DIR/slurmdbd.conf
PACKAGES=(slurmctld slurmd slurm-client munge)
[[ $ACCOUNTING == 1 ]] && PACKAGES+=(slurmdbd mariadb-server)
NODE=$(hostname -s)

log() { echo "local_slurm: $*" >&2; }
die() { log "$*"; exit "${2:-1}"; }

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for <seconds> <description> <command...>
  local t=$1 what=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || { log "timed out after ${t}s waiting for $what"; return 1; }
    sleep 0.2
  done
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand (Debian/Ubuntu packages)" 3
  log "installing ${missing[*]} (apt-get, ~15 s)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1; then
    apt-get update -qq >>"$DIR/apt.log" 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$DIR/apt.log" 2>&1 ||
      die "apt-get install failed, see $DIR/apt.log" 3
  fi
}

write_config() {  # writes slurm.conf (+ gres.conf, slurmdbd.conf); returns 0 if something changed
  local cpus mem real_mem new changed=1
  cpus=${LOCAL_SLURM_CPUS:-$(nproc)}
  real_mem=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
  mem=${LOCAL_SLURM_MEM_MB:-$((real_mem * 95 / 100))}
  mkdir -p "$CONF_DIR"
  local gres_line="" gres_types=""
  if ((GPUS > 0)); then
    gres_types="GresTypes=gpu"
    gres_line="Gres=gpu:$GPUS"
    local g
    : >"$DIR/gres.conf.new"
    for ((g = 0; g < GPUS; g++)); do
      [[ -c $DIR/fakegpu$g ]] || mknod "$DIR/fakegpu$g" c 1 3  # gres/gpu needs char devices; /dev/null's numbers
      echo "NodeName=$NODE Name=gpu File=$DIR/fakegpu$g" >>"$DIR/gres.conf.new"
    done
  else
    : >"$DIR/gres.conf.new"
  fi
  local acct="AccountingStorageType=accounting_storage/none"
  if [[ $ACCOUNTING == 1 ]]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none"
  fi
  new=$(cat <<EOF
# written by mfti-lightning scripts/local_slurm.sh; rewritten on the next start
ClusterName=mfti-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
KillWait=5
MinJobAge=300
MailProg=/bin/true
SchedulerParameters=sched_interval=2,bf_interval=1
SlurmdParameters=config_overrides
$gres_types
$acct
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem $gres_line State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)
  if [[ -f $CONF ]] && [[ "$(cat "$CONF")" == "$new" ]] && cmp -s "$DIR/gres.conf.new" "$CONF_DIR/gres.conf"; then
    changed=1
  else
    printf '%s\n' "$new" >"$CONF"
    cp "$DIR/gres.conf.new" "$CONF_DIR/gres.conf"
    changed=0
  fi
  if [[ $ACCOUNTING == 1 ]]; then
    cat >"$DBCONF.new" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageUser=slurm
StoragePass=mfti-local-slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DBCONF.new"
    cmp -s "$DBCONF.new" "$DBCONF" 2>/dev/null || mv "$DBCONF.new" "$DBCONF"
    rm -f "$DBCONF.new"
  fi
  return $changed
}

mysql_root() { mysql --protocol=socket -uroot "$@"; }

start_munge() {
  pid_alive /run/munge/munged.pid && return 0
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  [[ -s /etc/munge/munge.key ]] || { mungekey --create >/dev/null 2>&1 || create-munge-key -f; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  runuser -u munge -- munged
  wait_for 10 munged munge -n
}

start_db() {
  [[ $ACCOUNTING == 1 ]] || return 0
  if ! pid_alive /run/mysqld/mysqld.pid; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null 2>&1
    setsid nohup mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
      >"$DIR/log/mariadb.log" 2>&1 </dev/null &
    wait_for 30 mariadb mysql_root -e "select 1"
  fi
  if [[ $FRESH == 1 ]]; then  # job ids restart at 1: an old accounting DB would report stale jobs
    mysql_root -e "DROP DATABASE IF EXISTS slurm_acct_db"
  fi
  mysql_root -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'mfti-local-slurm';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'mfti-local-slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  if ! pid_alive "$DIR/run/slurmdbd.pid"; then
    slurmdbd
    wait_for 20 slurmdbd bash -c "exec 3<>/dev/tcp/127.0.0.1/6819"
  fi
}

stop_pid() {  # stop_pid <pidfile> <name>
  local f=$1
  pid_alive "$f" || return 0
  local pid
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  log "$2 (pid $pid) did not stop in 10 s; killing it"
  kill -9 "$pid" 2>/dev/null || true
}

cmd_start() {
  [[ $(id -u) == 0 ]] || die "needs root (installs packages and runs the daemons as root); run it with sudo" 3
  FRESH=0
  [[ -d $DIR/state ]] || FRESH=1
  mkdir -p "$DIR"/{state,spool,run,log}
  install_packages
  [[ $NODE == "$(hostname -s)" ]] && ! getent hosts "$NODE" >/dev/null && echo "127.0.0.1 $NODE" >>/etc/hosts
  local restart=0
  if write_config; then restart=1; fi
  start_munge
  start_db
  if ((restart)); then
    stop_pid "$DIR/run/slurmd.pid" slurmd
    stop_pid "$DIR/run/slurmctld.pid" slurmctld
  fi
  if ! pid_alive "$DIR/run/slurmctld.pid"; then
    slurmctld
    wait_for 30 slurmctld scontrol ping
  fi
  if ! pid_alive "$DIR/run/slurmd.pid"; then
    slurmd
  fi
  wait_for 60 "an idle node" bash -c "sinfo -h -N -o %t | grep -Eq '^(idle|mix|alloc)'" || {
    sinfo -N >&2 || true
    die "the node did not come up; see $DIR/log/"
  }
  if ((restart)) || [[ $FRESH == 1 ]]; then
    timeout 60 srun -t 1 true || die "smoke test 'srun true' failed; see $DIR/log/"
  fi
  echo "$PARTITION"
}

cmd_stop() {
  if command -v scancel >/dev/null && pid_alive "$DIR/run/slurmctld.pid"; then
    scancel --full --user=root 2>/dev/null || true
  fi
  stop_pid "$DIR/run/slurmd.pid" slurmd
  stop_pid "$DIR/run/slurmctld.pid" slurmctld
  stop_pid "$DIR/run/slurmdbd.pid" slurmdbd
  if [[ ${LOCAL_SLURM_PURGE:-0} == 1 ]]; then
    # never delete the state dir without the accounting DB (reused job ids)
    if pid_alive /run/mysqld/mysqld.pid; then mysql_root -e "DROP DATABASE IF EXISTS slurm_acct_db" || true; fi
    rm -rf "$DIR"
  fi
  stop_pid /run/mysqld/mysqld.pid mariadb
  stop_pid /run/munge/munged.pid munged
  log "stopped"
}

cmd_status() {
  local rc=0 f
  for f in /run/munge/munged.pid /run/mysqld/mysqld.pid "$DIR/run/slurmdbd.pid" "$DIR/run/slurmctld.pid" \
    "$DIR/run/slurmd.pid"; do
    if pid_alive "$f"; then echo "up   $(basename "$f" .pid) (pid $(cat "$f"))"; else echo "down $(basename "$f" .pid)"; rc=1; fi
  done
  if command -v sinfo >/dev/null && pid_alive "$DIR/run/slurmctld.pid"; then sinfo; squeue; fi
  return $rc
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status   (settings: see the top of this script)" >&2; exit 2 ;;
esac
