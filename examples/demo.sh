#!/usr/bin/env bash
# The Asocial operator demo on the local devcluster.
#
#   examples/demo.sh         bring the devcluster up, install the CRD and RBAC, (re)start the
#                            operator in the background, apply examples/minimal.yaml, wait
#                            until it is Ready and show what was created
#   examples/demo.sh stop    stop the operator this script started (the cluster keeps running;
#                            `devcluster/devcluster down` stops that)
#
# Safe to run again: everything is applied idempotently and a running demo operator is
# replaced. The operator's log and PID live next to the devcluster's state
# (see ASOCIAL_DEVCLUSTER_DIR); it is stopped if this script fails or is interrupted.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
NAMESPACE="${ASOCIAL_DEMO_NAMESPACE:-asocial-demo}"
INSTANCE=chat
TIMEOUT="${ASOCIAL_DEMO_TIMEOUT:-180}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

stop_operator() {
  # The PID file, plus any demo operator started against the same kubeconfig path: a
  # `devcluster down` removes the state dir, PID file included, but not the operator.
  local pidfile="$1" kubeconfig="$2" pids pid
  pids="$(cat "$pidfile" 2>/dev/null || true) $(pgrep -f -- "-m asocial_operator --kubeconfig $kubeconfig " || true)"
  for pid in $pids; do
    # Only signal our operator: the PID must still run asocial_operator.
    if kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'asocial_operator'; then
      say "stopping the previous demo operator (pid $pid)"
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
  done
  rm -f "$pidfile"
}

if [[ "${1:-}" == "stop" ]]; then
  KUBECONFIG_PATH="$(devcluster/devcluster kubeconfig)"
  stop_operator "$(dirname "$KUBECONFIG_PATH")/asocial-operator.pid" "$KUBECONFIG_PATH"
  exit 0
fi

say "starting the devcluster (the first build takes a while)"
KUBECONFIG="$(devcluster/devcluster up | tail -n 1)"
export KUBECONFIG
STATE="$(dirname "$KUBECONFIG")"
PIDFILE="$STATE/asocial-operator.pid"
LOG="$STATE/asocial-operator.log"
KUBECTL_BIN="$(devcluster/devcluster bin-dir)/kubectl"
kubectl() { "$KUBECTL_BIN" --kubeconfig "$KUBECONFIG" "$@"; }

say "installing the AsocialInstance CRD and the operator's RBAC"
kubectl apply --server-side --force-conflicts -f crds/asocialinstances.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/asocialinstances.asocial.io >/dev/null
for f in namespace serviceaccount rbac bindings; do
  kubectl apply --server-side --force-conflicts -f "deploy/base/$f.yaml" >/dev/null
done

stop_operator "$PIDFILE" "$KUBECONFIG"
LIVENESS_PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
METRICS_PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
say "starting the operator (log: $LOG)"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" nohup "$PYTHON" -m asocial_operator \
  --kubeconfig "$KUBECONFIG" --all-namespaces \
  --liveness "http://127.0.0.1:$LIVENESS_PORT/healthz" --metrics-port "$METRICS_PORT" \
  --log-format json >>"$LOG" 2>&1 &
echo $! >"$PIDFILE"
trap 'status=$?; if [[ $status -ne 0 ]]; then say "demo failed; stopping the operator"; stop_operator "$PIDFILE" "$KUBECONFIG"; fi' EXIT
trap 'exit 130' INT TERM

for _ in $(seq 150); do
  if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$LIVENESS_PORT/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -n 30 "$LOG" >&2; exit 1; }
  sleep 0.2
done

say "applying examples/minimal.yaml in namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply --server-side -n "$NAMESPACE" -f examples/minimal.yaml

say "waiting until $INSTANCE is Ready (timeout ${TIMEOUT}s)"
last=""
deadline=$((SECONDS + TIMEOUT))
while :; do
  line="$(kubectl get asi "$INSTANCE" -n "$NAMESPACE" \
    -o jsonpath='{.status.phase}{"  "}{.status.message}' 2>/dev/null || true)"
  if [[ "$line" != "$last" && -n "$line" ]]; then
    printf '    %s\n' "$line" >&2
    last="$line"
  fi
  [[ "$line" == Ready* ]] && break
  if ((SECONDS > deadline)); then
    say "not Ready after ${TIMEOUT}s; operator log tail:"
    tail -n 30 "$LOG" >&2
    exit 1
  fi
  sleep 0.5
done

say "kubectl get asocialinstances -n $NAMESPACE"
kubectl get asocialinstances -n "$NAMESPACE"
echo
say "children (label app.kubernetes.io/instance=$INSTANCE)"
kubectl get deploy,sts,svc,hpa,pdb,netpol,ing,cm,secret,sa -n "$NAMESPACE" \
  -l "app.kubernetes.io/instance=$INSTANCE"
echo
say "the operator keeps running (pid $(cat "$PIDFILE"), metrics http://127.0.0.1:$METRICS_PORT/metrics)"
echo "    stop it:           examples/demo.sh stop" >&2
echo "    stop the cluster:  devcluster/devcluster down" >&2
echo "    kubectl:           devcluster/devcluster kubectl get asi -A" >&2
