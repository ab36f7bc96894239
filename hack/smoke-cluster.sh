#!/usr/bin/env bash
# Quick manual check of a running local cluster (hack/cluster-up.sh first): a 2-replica
# Deployment gets Running pods on the kwok nodes, `kubectl logs` serves a CRI-format log file
# through a ClusterLogs object applied at run time, and the non-admin user is Forbidden.
# Cleans up after itself (namespace, ClusterLogs, log file), also on failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="$(realpath -m "${AISRE_CLUSTER_DIR:-$ROOT/.cluster}")"
export PATH="$ROOT/.tools/bin:$PATH"
export KUBECONFIG="$CLUSTER_DIR/kubeconfig"
export KUBECACHEDIR="$CLUSTER_DIR/kube-cache"  # not ~/.kube/cache
USER_KC="$CLUSTER_DIR/kubeconfig-user"
NS=aisre-smoke
LOGDIR="$CLUSTER_DIR/smoke-logs"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'SMOKE FAILED: %s\n' "$*" >&2; exit 1; }
[[ -s "$KUBECONFIG" ]] || fail "no $KUBECONFIG; run hack/cluster-up.sh"

cleanup() {
  kubectl delete clusterlogs aisre-smoke --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$LOGDIR"
}
trap cleanup EXIT

step "nodes"
kubectl get nodes -o wide

step "deployment: 2 replicas"
kubectl create namespace "$NS"
# pods need the namespace's default ServiceAccount, created asynchronously
for _ in $(seq 60); do kubectl -n "$NS" get sa default >/dev/null 2>&1 && break; sleep 0.5; done
kubectl -n "$NS" create deployment web --image=registry.k8s.io/nginx:1.27 --replicas=2
kubectl -n "$NS" rollout status deployment/web --timeout=60s
kubectl -n "$NS" get rs,pods -o wide
mapfile -t pods < <(kubectl -n "$NS" get pods -l app=web -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
((${#pods[@]} == 2)) || fail "expected 2 pods, got ${#pods[@]}"
for p in "${pods[@]}"; do
  s="$(kubectl -n "$NS" get pod "$p" -o jsonpath='{.spec.nodeName} {.status.phase}')"
  [[ "$s" =~ ^kwok-node-[0-9]+\ Running$ ]] || fail "pod $p: $s"
done

step "logs via ClusterLogs"
# kwok-controller reads the file itself (binary runtime: same host), so any absolute path it
# can read works. CRI format is required: "<RFC3339Nano> <stream> <P|F> <message>".
mkdir -p "$LOGDIR"
cat >"$LOGDIR/web.log" <<'EOF'
2026-01-01T00:00:00.000000000Z stdout F smoke: server started
2026-01-01T00:00:01.000000000Z stderr F smoke: something went wrong
EOF
kubectl apply -f - <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: aisre-smoke
spec:
  selector:
    matchNamespaces: [$NS]
  logs:
  - containers: [nginx]
    logsFile: $LOGDIR/web.log
    follow: false
EOF
out=""
for _ in $(seq 20); do  # kwok picks the object up from its watch: allow a moment
  out="$(kubectl -n "$NS" logs "${pods[0]}" 2>&1)" && [[ "$out" == *"server started"* ]] && break
  sleep 0.5
done
printf '%s\n' "$out"
[[ "$out" == *"smoke: server started"* && "$out" == *"something went wrong"* ]] || fail "kubectl logs: $out"
kubectl -n "$NS" logs "${pods[1]}" --timestamps | head -n 2

step "non-admin user aisre-dev"
kubectl --kubeconfig "$USER_KC" auth whoami
if out="$(kubectl --kubeconfig "$USER_KC" -n "$NS" get pods 2>&1)"; then
  fail "aisre-dev can list pods"
fi
printf '%s\n' "$out"
[[ "$out" == *[Ff]orbidden* ]] || fail "expected Forbidden: $out"

step "cleanup"
cleanup
trap - EXIT
kubectl delete namespace "$NS" --ignore-not-found --timeout=60s >/dev/null 2>&1 || true
echo "SMOKE OK"
