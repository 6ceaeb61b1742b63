#!/bin/bash
# A driver script for an experiment on a login node: launch N jobs under one tag, wait until
# they have all finished, then show what they wrote.
#
#   JOB_TAG=exp-$(date +%Y%m%d-%H%M%S) share/examples/driver.sh 20 share/examples/job.sbatch
#
# rj-wait asks Redis, never Slurm: it follows what rj-track writes. This script starts an
# rj-track for the tag in the background; where one already runs (systemd unit, another login
# node), the new one stands by and the old one keeps the tag, so nothing is done twice.
# Exit status: 0 all jobs completed, 3 some failed, timed out or were cancelled, 124 --timeout.
set -euo pipefail

n=${1:-4}
script=${2:-share/examples/job.sbatch}
: "${JOB_TAG:?is not set: export JOB_TAG=<experiment tag>}"
export JOB_TAG

rj-track -q --tag "$JOB_TAG" >/dev/null &
tracker=$!
trap 'kill "$tracker" 2>/dev/null; wait "$tracker" 2>/dev/null || true' EXIT

# rj-launch prints the job ID only after sbatch accepted the job; a failure stops the script
# (set -e), and 75 (Redis unreachable, the ID spooled) too, since rj-wait could not find it yet.
jids=()
for _ in $(seq 1 "$n"); do
    jids+=("$(rj-launch -- "$script")")
done
echo "launched ${#jids[@]} jobs under tag $JOB_TAG: ${jids[*]}" >&2

# One line per job as it finishes: TAG ID SET EXIT_CODE STATE.
status=0
rj-wait --timeout "${TIMEOUT:-12h}" "${jids[@]}" || status=$?
case $status in
    0) ;;
    3) echo "some jobs did not complete; their results may be partial" >&2 ;;
    *) exit "$status" ;;    # 124: still running after TIMEOUT; others: rj-wait's error
esac

rj-last --all
exit "$status"
