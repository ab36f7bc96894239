#!/usr/bin/env bash
# The demo: the local cluster, the CRDs and the chart's approval policy and executor RBAC,
# the operator (as `aisre run`), a real fault (a rollout asking for more CPU than any node
# has), the Incident detection opens for it, the root cause its Investigation finds, the
# RemediationPolicy's decision and the rollback executed (as the executor identity) and
# verified; where the real node runs, a real crash loop from a bad release on it, found,
# explained and rolled back; then the examples, and what the knowledge graph (Neo4j on
# loopback) holds about the Incidents; with AISRE_DEMO_KAFKA=1 the operator also publishes to a
# loopback Kafka and `aisre fleet incidents` shows the fleet view. Grace times are shortened so the demo takes seconds (the
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

# The Incident detection opened in $NS for the workload named $1 (waits up to $2 s).
incident_for() {
  local name="" deadline=$((SECONDS + $2))
  while [ -z "$name" ] && [ $SECONDS -lt $deadline ]; do
    name="$(kubectl get incidents -n "$NS" -l aisre.dev/fingerprint \
      -o jsonpath="{range .items[?(@.spec.resource.name==\"$1\")]}{.metadata.name}{end}" 2>/dev/null || true)"
    [ -n "$name" ] || sleep 0.3
  done
  [ -n "$name" ] || { echo "no Incident for $1" >&2; tail -20 "$CLUSTER_DIR/operator.log" >&2; return 1; }
  echo "$name"
}

# The policy Git would hold for the workload labelled app=$1: a rollback may run on its own.
rollback_policy() {
  kubectl apply -n "$NS" -f - <<POLICY
apiVersion: aisre.dev/v1alpha1
kind: RemediationPolicy
metadata: {name: $1-rollbacks}
spec:
  targets: {selector: {matchLabels: {app: $1}}, kinds: [Deployment]}
  mode: suggest
  actions: [{type: rollback, mode: auto}]
  limits: {actionsPerHour: 2, maxConcurrent: 1, cooldown: 10m, minHealthyPercent: 0}
  verification: {timeout: 2m, revertOnFailure: true}
POLICY
}

# Waits (up to $2 s) for the first action journaled in Incident $1 to have a result; prints the journal.
journal_when_done() {
  local result="" deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    result="$(kubectl get incident "$1" -n "$NS" -o jsonpath='{.status.remediations[0].result}' 2>/dev/null || true)"
    case "$result" in Succeeded|Failed|Reverted|Skipped) break ;; esac
    sleep 0.4
  done
  kubectl get incident "$1" -n "$NS" \
    -o jsonpath='{range .status.remediations[*]}{.id}  {.type} {.target.kind}/{.target.name}  decision={.decision}  result={.result}  {.reason}{"\n"}{end}'
}

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

# A demo run before this one left its workloads, Incidents and the ledger of its actions (whose
# cooldowns outlive the Incidents, docs/security.md): start from a clean namespace.
kubectl delete deployments,incidents,investigations,remediationpolicies,runbooks --all -n "$NS" --ignore-not-found \
  --wait=true >/dev/null 2>&1 || true
kubectl delete configmap "aisre-ledger-$NS" -n aisre-system --ignore-not-found >/dev/null

step "the knowledge graph: Neo4j on loopback (hack/neo4j.sh: its test harness from Maven Central)"
NEO4J_URL="$(bash hack/neo4j.sh start | tail -1)" || NEO4J_URL=""
[ -n "$NEO4J_URL" ] && echo "$NEO4J_URL" || echo "no Neo4j here: memory stays the embedded index"

KAFKA=""  # AISRE_DEMO_KAFKA=1: the operator also publishes to Kafka (docs/fleet.md)
if [ "${AISRE_DEMO_KAFKA:-0}" = 1 ]; then
  step "the fleet: Apache Kafka on loopback (hack/kafka.sh: KRaft, its jars from Maven Central)"
  KAFKA="$(bash hack/kafka.sh start | tail -1)"
  echo "$KAFKA"
fi

step "the operator (aisre run: detection on, actions as the executor), logs in $CLUSTER_DIR/operator.log"
AISRE_KAFKA_BOOTSTRAP="$KAFKA" AISRE_FLEET_TENANT=demo AISRE_NEO4J_URI="$NEO4J_URL" AISRE_NEO4J_USER=neo4j AISRE_NEO4J_PASSWORD="${AISRE_NEO4J_PASSWORD:-password}" \
  AISRE_HTTP_PORT="$PORT" AISRE_OPERATOR_NAMESPACE=aisre-system AISRE_DETECT_PENDING_GRACE=5 AISRE_DETECT_SETTLE=2 \
  AISRE_DETECT_RESOLVE_AFTER=15 AISRE_EXECUTOR_USER=system:serviceaccount:aisre-system:aisre-executor \
  .venv/bin/aisre run -n "$NS" > "$CLUSTER_DIR/operator.log" 2>&1 &
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
rollback_policy checkout

step "the starter runbooks, cluster-wide (examples/runbooks/ in aisre-system; teams keep theirs in Git)"
kubectl apply -n aisre-system -f examples/runbooks/ >/dev/null
kubectl get runbooks -n aisre-system | head -5

step "a fault: checkout is rolled out asking for more CPU than any node has"
kubectl set resources deployment/checkout -n "$NS" --requests=cpu=64,memory=256Mi >/dev/null
sleep 3
kubectl get pods -n "$NS" -l app=checkout

step "detection opens one Incident for the Deployment (not one per pod) and investigates it"
INCIDENT="$(incident_for checkout 30)"
kubectl wait -n "$NS" --for=jsonpath='{.status.rootCause.category}'=InsufficientResources --timeout=60s "incident/$INCIDENT"
kubectl get incidents -A

step "the policy's decision and the action, journaled in the Incident (then verified)"
journal_when_done "$INCIDENT" 80
kubectl get rpol -n "$NS"
kubectl rollout status deployment/checkout -n "$NS" --timeout=60s
kubectl get pods -n "$NS" -l app=checkout

step "aisre report incident/$INCIDENT (signals, root cause, the evidence for it, actions)"
.venv/bin/aisre report "incident/$INCIDENT" -n "$NS"

if [ "$(cat "$CLUSTER_DIR/realnode-status" 2>/dev/null)" = ready ]; then
  step "on the real node (a real kubelet, containerd, runc): catalog 3.1.0, healthy"
  kubectl delete incidents -n "$NS" -l aisre.dev/fingerprint --ignore-not-found >/dev/null
  kubectl delete deployment catalog -n "$NS" --ignore-not-found --wait=true >/dev/null
  kubectl apply -n "$NS" -f - <<'CATALOG'
apiVersion: apps/v1
kind: Deployment
metadata: {name: catalog, labels: {app: catalog}}
spec:
  replicas: 2
  selector: {matchLabels: {app: catalog}}
  template:
    metadata: {labels: {app: catalog, app.kubernetes.io/version: "3.1.0"}}
    spec:
      nodeSelector: {aisre.dev/kubelet: real}
      tolerations: [{key: aisre.dev/real-node, operator: Exists, effect: NoSchedule}]
      terminationGracePeriodSeconds: 2
      containers:
        - name: catalog
          image: registry.local/faultapp:1
          args: ["--listen", ":8080", "--print", "catalog 3.1.0: serving 1204 products"]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
CATALOG
  rollback_policy catalog
  kubectl rollout status deployment/catalog -n "$NS" --timeout=90s
  kubectl get pods -n "$NS" -l app=catalog -o wide

  step "a real fault: catalog 3.2.0 panics at start, and the kubelet puts it in a crash loop"
  kubectl patch deployment catalog -n "$NS" --type=strategic -p '{"spec":{"template":{"metadata":{"labels":{"app.kubernetes.io/version":"3.2.0"}},"spec":{"containers":[{"name":"catalog","args":["--print","catalog 3.2.0: loading price rules","--print","panic: runtime error: index out of range [3] with length 3","--print","","--print","goroutine 1 [running]:","--print","catalog/internal/pricing.(*Rules).Apply(...)","--print","\t/src/internal/pricing/rules.go:112 +0x1c4","--exit","2"]}]}}}}' >/dev/null
  INCIDENT="$(incident_for catalog 90)"
  kubectl get pods -n "$NS" -l app=catalog
  kubectl wait -n "$NS" --for=jsonpath='{.status.rootCause.category}'=ApplicationError --timeout=90s "incident/$INCIDENT"
  kubectl get incident "$INCIDENT" -n "$NS"

  step "the rollback the policy allows, executed and verified by the real kubelet's report"
  journal_when_done "$INCIDENT" 160
  kubectl rollout status deployment/catalog -n "$NS" --timeout=90s
  kubectl get pods -n "$NS" -l app=catalog -o wide
  kubectl logs -n "$NS" deployment/catalog | tail -2
  .venv/bin/aisre report "incident/$INCIDENT" -n "$NS" | sed -n '1,25p'
else
  step "no real node here ($(cat "$CLUSTER_DIR/realnode-status" 2>/dev/null || echo 'not started')): the real-node part is skipped"
fi

step "the examples: an Investigation of deploy/checkout, an Incident, a RemediationPolicy"
kubectl apply -n "$NS" -f examples/
kubectl wait -n "$NS" --for=condition=Accepted --timeout=30s \
  investigation/checkout-1 incident/checkout-crashloop remediationpolicy/default
kubectl wait -n "$NS" --for=condition=Completed --timeout=60s investigation/checkout-1

step "kubectl get aisre -A"
kubectl get aisre -A

step "aisre report investigation/checkout-1 (the root cause, hypotheses, evidence, actions)"
.venv/bin/aisre report investigation/checkout-1 -n "$NS"

if [ -n "$NEO4J_URL" ]; then
  step "what the knowledge graph holds about this namespace's Incidents (Cypher, docs/knowledge.md)"
  NS="$NS" NEO4J_URL="$NEO4J_URL" .venv/bin/python - <<'CYPHER'
import os
import neo4j

QUERY = """
MATCH (inv:Investigation {namespace: $ns})-[:FOR]->(inc:Incident)
OPTIONAL MATCH (inv)-[c:CHAIN]->(o:Object)
WITH inc, inv, o ORDER BY c.step
RETURN inc.name AS incident, inc.category AS category, inv.confidence AS confidence, collect(o.key) AS chain
"""
auth = ("neo4j", os.environ.get("AISRE_NEO4J_PASSWORD", "password"))
with neo4j.GraphDatabase.driver(os.environ["NEO4J_URL"], auth=auth) as driver:
    records, _, _ = driver.execute_query(QUERY, ns=os.environ["NS"])
for r in records:
    print(f"{r['incident']}: {r['category']} ({r['confidence']}) via {' -> '.join(r['chain']) or 'no chain'}")
CYPHER
fi

if [ -n "$KAFKA" ]; then
  step "aisre fleet incidents (read from every tenant's aisre.<tenant>.incidents topic)"
  .venv/bin/aisre fleet incidents --bootstrap "$KAFKA"
fi

step "operator metrics"
curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^aisre_((handler_calls|incidents|signals|graph_writes)_total|memory_cases|graph_up)' || true

echo
echo "The cluster stays up: export KUBECONFIG=$KUBECONFIG to explore; 'make cluster-down' removes it."
