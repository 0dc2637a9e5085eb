#!/usr/bin/env bash
# The Asocial demo on the local devcluster, on the real stack: every part runs in
# containers on the devcluster's real node, deployed the way a platform team would.
#
#   examples/demo.sh         bring the devcluster up, build and import the images,
#                            `kubectl apply -k deploy/devcluster/` (CRD, RBAC, the operator:
#                            two replicas, one leader), apply examples/devcluster.yaml, wait
#                            until it is Ready on real pods and the devcluster's Gateway has
#                            accepted its route, show them, and print the canvas's URLs:
#                            http://127.0.0.1:8080/ and https://127.0.0.1:8443/ (Traefik)
#   examples/demo.sh stop    delete the demo instance (its namespace); the operator and the
#                            cluster keep running (`devcluster/devcluster down` stops all)
#
# Safe to run again: everything is applied idempotently and converges.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NAMESPACE="${ASOCIAL_DEMO_NAMESPACE:-asocial-demo}"
INSTANCE=chat
TIMEOUT="${ASOCIAL_DEMO_TIMEOUT:-300}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
kubectl() { devcluster/devcluster kubectl "$@"; }

if [[ "${1:-}" == "stop" ]]; then
  say "deleting the demo namespace $NAMESPACE (the instance and everything it owns)"
  kubectl delete namespace "$NAMESPACE" --ignore-not-found --wait=false
  exit 0
fi

say "starting the devcluster with its real node (the first build takes a while)"
devcluster/devcluster up >/dev/null

say "building asocial-chat and asocial-operator (make images; cached by content)"
devcluster/devcluster images >/dev/null

# Run again after a code change, the images keep their tags: pods that exist are
# restarted onto the new content.
restart_if_present() {  # NAMESPACE DEPLOYMENT
  if kubectl get deploy "$2" -n "$1" >/dev/null 2>&1; then
    kubectl rollout restart "deploy/$2" -n "$1" >/dev/null
  fi
}

say "installing the operator: kubectl apply -k deploy/devcluster/"
kubectl apply --server-side --force-conflicts -k deploy/devcluster/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/asocialinstances.asocial.io >/dev/null
restart_if_present asocial-system asocial-operator
kubectl rollout status deploy/asocial-operator -n asocial-system --timeout=180s >&2

say "applying examples/devcluster.yaml in namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply --server-side -n "$NAMESPACE" -f examples/devcluster.yaml >/dev/null
restart_if_present "$NAMESPACE" "$INSTANCE-backend"

say "waiting until $INSTANCE is Ready on real pods (timeout ${TIMEOUT}s)"
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
    say "not Ready after ${TIMEOUT}s; pods and the operator's log:"
    kubectl get pods -n "$NAMESPACE" -o wide >&2 || true
    kubectl logs -n asocial-system deploy/asocial-operator --tail=30 >&2 || true
    exit 1
  fi
  sleep 0.5
done

echo
say "kubectl get asocialinstances -n $NAMESPACE"
kubectl get asocialinstances -n "$NAMESPACE"
echo
say "pods (real containers on devcluster-node)"
kubectl get pods -n "$NAMESPACE" -o wide
kubectl get pods -n asocial-system -o wide
echo
say "children (label app.kubernetes.io/instance=$INSTANCE)"
kubectl get deploy,sts,svc,hpa,pdb,netpol,httproute,cm,secret,sa -n "$NAMESPACE" \
  -l "app.kubernetes.io/instance=$INSTANCE"

CA="$(devcluster/devcluster ca)"
echo
say "the canvas, through the devcluster's Gateway (Traefik):"
cat >&2 <<EOF
    http://127.0.0.1:8080/
    https://127.0.0.1:8443/     (trust the devcluster's CA: $CA)
    Open it twice, click anywhere and type: each browser connection goes through Traefik
    to a backend pod, so two windows usually land on different pods and chat through
    Redis. Add ?channel=myroom to pick a room; any name under .devcluster.test reaches
    the same listeners (curl --resolve chat.devcluster.test:8443:127.0.0.1 --cacert $CA).
    'examples/demo.sh stop' deletes the instance; 'devcluster/devcluster down' stops the
    cluster.
EOF
