#!/usr/bin/env bash
# Make this machine a hardware target of the lab's Ray cluster: one command per machine, run from a checkout
# whose requirements are installed (pip install -r requirements.txt).
#
#   bash scripts/join_cluster.sh head [NAME]              # the first machine: start the cluster's head here
#   bash scripts/join_cluster.sh HEAD_HOST:6379 [NAME]    # every other machine: join that head
#   bash scripts/join_cluster.sh stop                     # leave the cluster (stops this machine's Ray processes)
#
# NAME (default: the short hostname) becomes the node's label qlab-name, which the lab shows as the target's
# name. The node offers one qlab_bench slot (one measurement at a time), runs this checkout's code
# (PYTHONPATH) and keeps its own model store (QLAB_CACHE_DIR, default ./cache).
#
# Security: a Ray cluster runs code for anyone who can reach its ports. Keep it on a private network, and
# turn on Ray's token authentication on every machine and for the lab itself:
#   export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<the same secret everywhere>
# Then point the lab at the cluster: QLAB_RAY_ADDRESS=HEAD_HOST:6379 streamlit run app.py
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WHERE=${1:-}
NAME=${2:-$(hostname -s)}
if [ -z "$WHERE" ]; then
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
if [ "$WHERE" = "stop" ]; then
  exec ray stop
fi
if ! printf '%s' "$NAME" | grep -Eq '^[A-Za-z0-9._-]{1,63}$'; then
  echo "error: node name '$NAME' must be 1-63 letters, digits, '.', '_' or '-'." >&2
  exit 2
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export QLAB_CACHE_DIR="${QLAB_CACHE_DIR:-$ROOT/cache}"
COMMON=(--labels "qlab-name=$NAME" --resources '{"qlab_bench": 1}' --disable-usage-stats)
if [ "$WHERE" = "head" ]; then
  ray start --head --port="${QLAB_RAY_PORT:-6379}" --include-dashboard=false "${COMMON[@]}"
  echo "Head started as '$NAME'. On the other machines: bash scripts/join_cluster.sh $(hostname -I 2>/dev/null | awk '{print $1}'):${QLAB_RAY_PORT:-6379} NAME"
else
  ray start --address="$WHERE" "${COMMON[@]}"
  echo "Joined $WHERE as '$NAME'."
fi
echo "Run the lab with: QLAB_RAY_ADDRESS=${WHERE/head/auto} streamlit run app.py   (or python -m core hardware)"
