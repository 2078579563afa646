#!/usr/bin/env bash
# pause_tree.sh STOP|CONT PID: pause (SIGSTOP) or resume (SIGCONT) a background run and every process
# under it, found by parent PID in /proc (Linux), so that a timing taken meanwhile has the cores to
# itself. A signal to the run's process group does not reach everything: GNU timeout
# (gpu_fmnist_study.sh) puts the study in a process group of its own, and each cell's MPI singleton
# (orted) starts a session of its own.
# STOP signals the parents first (none can start a new child meanwhile), CONT the children first.
#   bash benchmarks/pause_tree.sh STOP "$(cat run.pid)"; <measure>; bash benchmarks/pause_tree.sh CONT "$(cat run.pid)"
set -uo pipefail
[ $# -eq 2 ] && { [ "$1" = STOP ] || [ "$1" = CONT ]; } && [[ $2 =~ ^[0-9]+$ ]] ||
  { echo "usage: pause_tree.sh STOP|CONT PID" >&2; exit 2; }
sig=$1 root=$2
kill -0 "$root" 2>/dev/null || { echo "pause_tree.sh: no process $root" >&2; exit 1; }
# "PID PPID" of every process, read once from /proc (Linux; no procps needed); the command name in
# /proc/PID/stat may hold spaces, so the fields are taken after its closing parenthesis
table=$(for f in /proc/[0-9]*/stat; do
  read -r rest <"$f" 2>/dev/null || continue
  rest=${rest##*) }
  set -- $rest
  f=${f#/proc/}
  echo "${f%/stat} $2"
done)
tree() { # PID and its descendants, parents first
  echo "$1"
  local c
  for c in $(awk -v p="$1" '$2 == p {print $1}' <<<"$table"); do tree "$c"; done
}
pids=$(tree "$root")
[ "$sig" = CONT ] && pids=$(echo "$pids" | tac)
n=0
for p in $pids; do kill -"$sig" "$p" 2>/dev/null && n=$((n + 1)); done
echo "pause_tree.sh: $sig sent to $n processes under $root"
