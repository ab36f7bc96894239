#!/usr/bin/env bash
# The demo: the local cluster, the CRDs, the operator (as `aisre run`), the examples,
# and what kubectl shows of them. Later issues extend it with a fault, the Incident, the
# root cause and the policy's decision.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.tools/bin:$PATH"
CLUSTER_DIR="${AISRE_CLUSTER_DIR:-$ROOT/.cluster}"
export KUBECONFIG="$CLUSTER_DIR/kubeconfig"
NS="${AISRE_DEMO_NAMESPACE:-aisre-demo}"
PORT="${AISRE_HTTP_PORT:-18080}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "local cluster (kwokctl, real API server, scheduler, controller-manager)"
bash hack/cluster-up.sh
kubectl get nodes

step "CRDs generated from the models"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
kubectl get crd -l app.kubernetes.io/part-of=aisre

step "the operator (aisre run), logs in $CLUSTER_DIR/operator.log"
AISRE_HTTP_PORT="$PORT" .venv/bin/aisre run > "$CLUSTER_DIR/operator.log" 2>&1 &
OPERATOR_PID=$!
trap 'kill $OPERATOR_PID 2>/dev/null; wait $OPERATOR_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 $OPERATOR_PID 2>/dev/null || { cat "$CLUSTER_DIR/operator.log"; exit 1; }
  sleep 0.2
done
curl -fs "http://127.0.0.1:$PORT/readyz"; echo

step "a bad spec is refused by the API server, before the operator sees it"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -n "$NS" -f tests/invalid/investigation-target-both.yaml 2>&1 || true

step "the examples: an Investigation, an Incident, a RemediationPolicy"
kubectl apply -n "$NS" -f examples/
kubectl wait -n "$NS" --for=condition=Accepted --timeout=30s \
  investigation/checkout-1 incident/checkout-crashloop remediationpolicy/default

step "kubectl get aisre -A"
kubectl get aisre -A

step "kubectl get investigation checkout-1 -o yaml (status)"
kubectl get investigation checkout-1 -n "$NS" -o jsonpath='{.status}' | python3 -m json.tool

step "operator metrics"
curl -fs "http://127.0.0.1:$PORT/metrics" | grep '^aisre_handler_calls_total' || true

echo
echo "The cluster stays up: export KUBECONFIG=$KUBECONFIG to explore; 'make cluster-down' removes it."
