#!/usr/bin/env bash
# A real two-node SLURM on this one machine, for trying (and testing) trainer.num_nodes > 1 without a cluster.
#
#   scripts/local_slurm_multinode.sh start    install what is missing (Debian/Ubuntu, root), write the config, start
#                                             the daemons that are down, wait for every node to be idle, run one
#                                             task per node; prints ONLY the partition name on stdout
#   scripts/local_slurm_multinode.sh stop     cancel its jobs, stop its daemons by their pid files
#   scripts/local_slurm_multinode.sh status   daemons, sinfo, squeue
#   scripts/local_slurm_multinode.sh env      prints `export SLURM_CONF=...`: eval "$(scripts/local_slurm_multinode.sh env)"
#                                             points sbatch/srun/sacct (and so submitit and mfti-train -m) at this cluster
#
# How: N slurmd (`slurmd -N mn<i>`, Debian's slurmd is built with multiple-slurmd) and a slurmctld, all on 127.0.0.1,
# each daemon in its own UTS + mount namespace, so that a job on node mn<i> has hostname mn<i> and an /etc/hosts
# (a bind mount of $DIR/hosts, the real file is never written) where mnh, mn1..mnN are 127.0.0.1. Lightning takes
# MASTER_ADDR from the job's node list (mn1) and gloo binds to the address of the hostname: both resolve on every
# node. Every packet stays on loopback; no network namespace, no address or route is added.
#
# It shares nothing with scripts/local_slurm.sh (/etc/slurm, /run/munge, ports 6817-6819, MariaDB 3306), which may
# run beside it: own state dir, own munged (own key and socket), own MariaDB datadir + slurmdbd (sacct must work:
# submitit polls it to notice jobs SLURM killed or requeued), own ports, own cluster name. No systemd, no cgroups.
# Job ids start at FirstJobId=5001: Lightning's MASTER_PORT is 15000 + the last 4 digits of the job id, and both
# clusters' jobs listen on the same loopback, where a job 7 of each would otherwise collide.
# Idempotent: a second `start` with the same settings is a no-op; changed settings restart slurmctld + slurmd.
#
# Settings (environment):
#   LOCAL_SLURM_MN_DIR        everything: config, state, logs, pid files, munge key + socket, MariaDB data
#                             (default /var/tmp/mfti-local-slurm-mn)
#   LOCAL_SLURM_MN_NODES      compute nodes mn1..mnN (default 2)
#   LOCAL_SLURM_MN_CPUS       CPUs each node advertises (default: the real count; more = oversubscribe)
#   LOCAL_SLURM_MN_MEM_MB     memory each node advertises (default 8192; not enforced)
#   LOCAL_SLURM_MN_PARTITION  partition name (default mn)
#   LOCAL_SLURM_MN_PORT       first port: slurmctld P, slurmdbd P+1, MariaDB P+2, slurmd of mn<i> P+2+i (default 6930)
#   LOCAL_SLURM_MN_PURGE      stop only: 1 = also delete the state dir (config, jobs, accounting DB)
# Exit status of start: 0 ready, 1 failed (the log names the file to read), 3 not possible here (not root, no
# apt-get, no mount/UTS namespaces): the reason is on stderr.
set -euo pipefail

DIR=${LOCAL_SLURM_MN_DIR:-/var/tmp/mfti-local-slurm-mn}
N=${LOCAL_SLURM_MN_NODES:-2}
PARTITION=${LOCAL_SLURM_MN_PARTITION:-mn}
PORT=${LOCAL_SLURM_MN_PORT:-6930}
CONF=$DIR/etc/slurm.conf
SOCK=$DIR/munge/munge.socket
DB=$DIR/mysql
HEAD=mnh
NODES=()
for ((i = 1; i <= N; i++)); do NODES+=("mn$i"); done
export SLURM_CONF=$CONF # the client commands below, slurmctld, slurmd and slurmdbd (finds slurmdbd.conf beside it)

T0=${EPOCHREALTIME/./}
log() { printf 'local_slurm_multinode [%5.2fs]: %s\n' "$(((${EPOCHREALTIME/./} - T0) / 10000))e-2" "$*" >&2; }
die() { log "$1"; exit "${2:-1}"; }
pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # wait_for <seconds> <what> <command...>: poll every 0.2 s
  local end=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || { log "timed out waiting for $what"; return 1; }
    sleep 0.2
  done
}

# ---- start ---------------------------------------------------------------------------------------------------
install_packages() {
  local p missing=()
  for p in slurmctld slurmd slurm-client munge slurmdbd mariadb-server util-linux; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand (Debian/Ubuntu packages)" 3
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$DIR/log/apt.log" 2>&1; then
    apt-get update -qq >>"$DIR/log/apt.log" 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$DIR/log/apt.log" 2>&1 ||
      die "apt-get install failed, see $DIR/log/apt.log" 3
  fi
}

# as_host <host> <command...>: run a daemon as if on <host>: its own hostname and its own /etc/hosts. The daemon
# forks into the background; the namespaces live as long as it (and the job steps it starts) do.
as_host() {
  local host=$1
  shift
  unshare --uts --mount --propagation private \
    bash -c 'mount --bind "$0" /etc/hosts && hostname "$1" && shift && exec "$@"' "$DIR/hosts" "$host" "$@"
}

write_hosts() { # the real /etc/hosts without our names, then our names on 127.0.0.1
  local names="$HEAD ${NODES[*]}"
  { grep -v -E "[[:space:]](${names// /|})([[:space:]]|\$)" /etc/hosts || true; echo "127.0.0.1 $names"; } >"$DIR/hosts"
}

start_munge() {
  pid_alive "$DIR/munge/munged.pid" && return 0
  mkdir -p "$DIR/munge"
  [[ -s $DIR/munge/munge.key ]] || dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$DIR/munge"
  chmod 0755 "$DIR/munge" # munged refuses a socket directory without execute permission for all
  chmod 0400 "$DIR/munge/munge.key"
  runuser -u munge -- munged --socket="$SOCK" --key-file="$DIR/munge/munge.key" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" ||
    die "munged did not start; see $DIR/munge/munged.log" # (its log lives where the munge user may write)
  wait_for 10 munged munge -S "$SOCK" -n || die "munged did not answer; see $DIR/munge/munged.log"
}

slurm_conf() {
  local cpus=${LOCAL_SLURM_MN_CPUS:-$(nproc)} mem=${LOCAL_SLURM_MN_MEM_MB:-8192} i
  cat <<EOF
# written by mfti-lightning scripts/local_slurm_multinode.sh; rewritten on the next start
ClusterName=mfti-mn
SlurmctldHost=$HEAD(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 3))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK,cred_expire=10
FirstJobId=5001
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.%n.log
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
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 1))
# the munge socket for slurmdbd: without it slurmctld and sacct use the default /run/munge socket (the other
# cluster's munged, another key) and slurmctld dies with "we have no TRES from it"
AccountingStoragePass=$SOCK
EOF
  for ((i = 1; i <= N; i++)); do
    echo "NodeName=mn$i NodeAddr=127.0.0.1 Port=$((PORT + 2 + i)) CPUs=$cpus RealMemory=$mem State=UNKNOWN"
  done
  echo "PartitionName=$PARTITION Nodes=mn[1-$N] Default=YES MaxTime=INFINITE State=UP"
}

write_config() { # returns 0 when slurm.conf changed
  local new
  new=$(slurm_conf)
  [[ -f $CONF && "$(cat "$CONF")" == "$new" ]] && return 1
  printf '%s\n' "$new" >"$CONF"
  cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 1))
SlurmUser=root
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT + 2))
StorageUser=slurm
StoragePass=mfti-local-slurm-mn
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/etc/slurmdbd.conf" # slurmdbd refuses a config others can read
  return 0
}

db() { mariadb --no-defaults -S "$DB/mysqld.sock" -uroot "$@"; }

start_accounting() {
  if ! pid_alive "$DB/mysqld.pid"; then
    if [[ ! -d $DB/mysql ]]; then
      mkdir -p "$DB" && chown mysql:mysql "$DB"
      mariadb-install-db --no-defaults --user=mysql --datadir="$DB" --auth-root-authentication-method=socket \
        >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
    fi
    # --no-defaults: /etc/mysql (the other cluster's server) is not read
    setsid mariadbd --no-defaults --user=mysql --datadir="$DB" --socket="$DB/mysqld.sock" --pid-file="$DB/mysqld.pid" \
      --port=$((PORT + 2)) --bind-address=127.0.0.1 --skip-name-resolve --log-error="$DIR/log/mariadb.log" \
      </dev/null >/dev/null 2>&1 &
    wait_for 60 mariadb db -e "select 1" || die "mariadb did not start; see $DIR/log/mariadb.log"
  fi
  if ((FRESH)); then # job ids restart: an old accounting DB would answer sacct with stale jobs
    db -e "DROP DATABASE IF EXISTS slurm_acct_db"
  fi
  db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'mfti-local-slurm-mn';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  if ! pid_alive "$DIR/run/slurmdbd.pid"; then
    slurmdbd
    wait_for 30 slurmdbd bash -c "exec 3<>/dev/tcp/127.0.0.1/$((PORT + 1))" || die "slurmdbd did not start; see $DIR/log/slurmdbd.log"
  fi
}

all_idle() { [[ $(sinfo -h -N -p "$PARTITION" -o %t | grep -cE '^(idle|mix|alloc)$') == "$N" ]]; }

cmd_start() {
  [[ $(id -u) == 0 ]] || die "needs root (installs packages, runs the daemons as root in their own namespaces); run it with sudo" 3
  ((N >= 1 && N <= 64)) || die "LOCAL_SLURM_MN_NODES=$N: use 1..64" 3
  unshare --uts --mount true 2>/dev/null || die "no mount/UTS namespaces here (unshare --uts --mount failed): cannot give each node its own hostname" 3
  FRESH=0
  [[ -d $DIR/state ]] || FRESH=1
  mkdir -p "$DIR"/{etc,state,log,run} "${NODES[@]/#/$DIR/spool/}" # slurmd logs an error without its spool dir
  install_packages
  write_hosts
  local changed=0
  write_config && changed=1
  start_munge
  start_accounting
  log "munged, MariaDB, slurmdbd up"
  if ((changed)); then # new settings: restart what reads slurm.conf
    stop_pids "$DIR/run/slurmctld.pid" "$DIR"/run/slurmd.*.pid
  fi
  if ! pid_alive "$DIR/run/slurmctld.pid"; then
    as_host "$HEAD" slurmctld # slurmctld insists that its hostname is SlurmctldHost's
    wait_for 30 slurmctld scontrol ping || die "slurmctld did not answer; see $DIR/log/slurmctld.log"
    log "slurmctld up"
  fi
  local n
  for n in "${NODES[@]}"; do
    pid_alive "$DIR/run/slurmd.$n.pid" || as_host "$n" slurmd -N "$n"
  done
  wait_for 60 "$N idle nodes" all_idle || { sinfo -N >&2 || true; die "the nodes did not come up; see $DIR/log/"; }
  if ((changed || FRESH)); then # one task per node, each on its own node with its own hostname
    local got want
    got=$(timeout 60 srun -N "$N" --ntasks-per-node=1 -t 1 bash -c 'echo "$SLURMD_NODENAME/$(hostname)"' | sort | xargs) ||
      die "smoke test srun -N $N failed; see $DIR/log/"
    want=$(for n in "${NODES[@]}"; do echo "$n/$n"; done | sort | xargs)
    [[ $got == "$want" ]] || die "smoke test: tasks ran as '$got', expected '$want'"
    log "srun -N $N: $got"
  fi
  log "up: $N nodes (${NODES[*]}), partition $PARTITION, SLURM_CONF=$CONF"
  echo "$PARTITION"
}

# ---- stop ----------------------------------------------------------------------------------------------------
stop_pids() { # stop_pids <pidfile>...: SIGTERM to all at once, SIGKILL what is left after 10 s
  local f pids=()
  for f in "$@"; do pid_alive "$f" && pids+=("$(cat "$f")"); done
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  local _ p alive
  for _ in $(seq 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.2
  done
  log "pids ${pids[*]} did not stop in 10 s; killing them"
  kill -9 "${pids[@]}" 2>/dev/null || true
}

in_our_namespaces() { # pids of the processes in the UTS namespaces of our slurmd/slurmctld (job steps included)
  local f ns=() p
  for f in "$DIR/run/slurmctld.pid" "$DIR"/run/slurmd.*.pid; do
    pid_alive "$f" && ns+=("$(readlink "/proc/$(cat "$f")/ns/uts")")
  done
  ((${#ns[@]})) || return 0
  for p in /proc/[0-9]*; do
    local mine
    mine=$(readlink "$p/ns/uts" 2>/dev/null) || continue
    if [[ " ${ns[*]} " == *" $mine "* ]]; then echo "${p#/proc/} $mine"; fi
  done
}

cmd_stop() {
  if pid_alive "$DIR/run/slurmctld.pid"; then
    scancel --full --user=root 2>/dev/null || true
    wait_for 15 "jobs to end" bash -c '[[ -z $(squeue -h -t running,completing,configuring) ]]' || true
  fi
  # job steps left behind (slurmstepd, the job's processes): by pid, only those still in one of our namespaces
  local left
  left=$(in_our_namespaces)
  stop_pids "$DIR/run/slurmctld.pid" "$DIR"/run/slurmd.*.pid
  stop_pids "$DIR/run/slurmdbd.pid"
  local pid ns
  while read -r pid ns; do
    [[ -n $pid && $(readlink "/proc/$pid/ns/uts" 2>/dev/null) == "$ns" ]] && kill -9 "$pid" 2>/dev/null && log "killed left-over pid $pid"
  done <<<"$left"
  stop_pids "$DB/mysqld.pid" "$DIR/munge/munged.pid"
  if [[ ${LOCAL_SLURM_MN_PURGE:-0} == 1 ]]; then
    rm -rf "$DIR"
  fi
  log "stopped"
}

cmd_status() {
  local rc=0 f n files=("$DIR/munge/munged.pid" "$DB/mysqld.pid" "$DIR/run/slurmdbd.pid" "$DIR/run/slurmctld.pid")
  for n in "${NODES[@]}"; do files+=("$DIR/run/slurmd.$n.pid"); done
  for f in "${files[@]}"; do
    if pid_alive "$f"; then echo "up   $(basename "$f" .pid) (pid $(cat "$f"))"; else echo "down $(basename "$f" .pid)"; rc=1; fi
  done
  if pid_alive "$DIR/run/slurmctld.pid"; then sinfo -N; squeue; fi
  return $rc
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env   (settings: see the top of this script)" >&2; exit 2 ;;
esac
