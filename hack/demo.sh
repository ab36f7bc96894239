#!/usr/bin/env bash
# The demo: the local cluster, the CRDs and the chart's approval policy and executor RBAC,
# the operator (as `aisre run`), a real fault (a rollout asking for more CPU than any node
# has), the Incident detection opens for it, the root cause its Investigation finds, the
# RemediationPolicy's decision and the rollback executed (as the executor identity) and
# verified, then the examples. Grace times are shortened so the demo takes seconds (the
# defaults give a Pending pod 120 s before it is an incident).

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

step "the chart's approval policy (ValidatingAdmissionPolicy) and the executor's RBAC"
kubectl create namespace aisre-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
helm template aisre charts/aisre -n aisre-system \
  --show-only templates/approvals-vap.yaml --show-only templates/executor-rbac.yaml | kubectl apply -f - >/dev/null
kubectl get validatingadmissionpolicies

step "the operator (aisre run: detection on, actions as the executor), logs in $CLUSTER_DIR/operator.log"
AISRE_HTTP_PORT="$PORT" AISRE_OPERATOR_NAMESPACE=aisre-system AISRE_DETECT_PENDING_GRACE=5 AISRE_DETECT_SETTLE=2 \
  AISRE_DETECT_RESOLVE_AFTER=15 AISRE_EXECUTOR_USER=system:serviceaccount:aisre-system:aisre-executor \
  .venv/bin/aisre run > "$CLUSTER_DIR/operator.log" 2>&1 &
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

step "checkout, healthy, and the policy Git would hold for it: rollback may run on its own"
kubectl delete investigation checkout-1 -n "$NS" --ignore-not-found >/dev/null
kubectl delete incidents -n "$NS" -l aisre.dev/fingerprint --ignore-not-found >/dev/null
kubectl delete deployment checkout -n "$NS" --ignore-not-found >/dev/null
kubectl create deployment checkout -n "$NS" --image=registry.local/shop/checkout:1.4.2 --replicas=2 \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl set resources deployment/checkout -n "$NS" --requests=cpu=100m,memory=256Mi >/dev/null
kubectl rollout status deployment/checkout -n "$NS" --timeout=60s
kubectl apply -n "$NS" -f - <<'POLICY'
apiVersion: aisre.dev/v1alpha1
kind: RemediationPolicy
metadata: {name: checkout-rollbacks}
spec:
  targets: {selector: {matchLabels: {app: checkout}}, kinds: [Deployment]}
  mode: suggest
  actions: [{type: rollback, mode: auto}]
  limits: {actionsPerHour: 2, maxConcurrent: 1, cooldown: 10m, minHealthyPercent: 0}
  verification: {timeout: 2m, revertOnFailure: true}
POLICY

step "a fault: checkout is rolled out asking for more CPU than any node has"
kubectl set resources deployment/checkout -n "$NS" --requests=cpu=64,memory=256Mi >/dev/null
sleep 3
kubectl get pods -n "$NS" -l app=checkout

step "detection opens one Incident for the Deployment (not one per pod) and investigates it"
INCIDENT=""
for _ in $(seq 1 150); do
  INCIDENT="$(kubectl get incidents -n "$NS" -l aisre.dev/fingerprint -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)"
  [ -n "$INCIDENT" ] && break
  sleep 0.2
done
[ -n "$INCIDENT" ] || { echo "no Incident"; tail -20 "$CLUSTER_DIR/operator.log"; exit 1; }
kubectl wait -n "$NS" --for=jsonpath='{.status.rootCause.category}'=InsufficientResources --timeout=60s "incident/$INCIDENT"
kubectl get incidents -A

step "the policy's decision and the action, journaled in the Incident (then verified)"
for _ in $(seq 1 200); do
  RESULT="$(kubectl get incident "$INCIDENT" -n "$NS" -o jsonpath='{.status.remediations[0].result}' 2>/dev/null || true)"
  case "$RESULT" in Succeeded|Failed|Reverted|Skipped) break ;; esac
  sleep 0.4
done
kubectl get incident "$INCIDENT" -n "$NS" \
  -o jsonpath='{range .status.remediations[*]}{.id}  {.type} {.target.kind}/{.target.name}  decision={.decision}  result={.result}  {.reason}{"\n"}{end}'
kubectl get rpol -n "$NS"
kubectl rollout status deployment/checkout -n "$NS" --timeout=60s
kubectl get pods -n "$NS" -l app=checkout

step "aisre report incident/$INCIDENT (signals, root cause, the evidence for it, actions)"
.venv/bin/aisre report "incident/$INCIDENT" -n "$NS"

step "the examples: an Investigation of deploy/checkout, an Incident, a RemediationPolicy"
kubectl apply -n "$NS" -f examples/
kubectl wait -n "$NS" --for=condition=Accepted --timeout=30s \
  investigation/checkout-1 incident/checkout-crashloop remediationpolicy/default
kubectl wait -n "$NS" --for=condition=Completed --timeout=60s investigation/checkout-1

step "kubectl get aisre -A"
kubectl get aisre -A

step "aisre report investigation/checkout-1 (the root cause, hypotheses, evidence, actions)"
.venv/bin/aisre report investigation/checkout-1 -n "$NS"

step "operator metrics"
curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^aisre_(handler_calls|incidents|signals)_total' || true

echo
echo "The cluster stays up: export KUBECONFIG=$KUBECONFIG to explore; 'make cluster-down' removes it."
