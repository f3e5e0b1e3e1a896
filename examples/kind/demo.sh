#!/usr/bin/env bash
# `make kind-demo`: the operator on a kind cluster, from the same Dockerfiles and
# manifests the tests use. Needs docker (with its engine running), kind and kubectl.
#
#   1. create the kind cluster $KIND_CLUSTER (default mlmodel) unless it exists;
#   2. build the operator and runtime images and load them into the cluster;
#   3. kubectl apply -k manifests/ (CRD, namespace, RBAC, operator);
#   4. a model store that trains the example models, then iris v1 and a load;
#   5. iris v2: a canary rollout through 25%, 50%, 100%, judged by the operator.
set -euo pipefail

cd "$(dirname "$0")/../.."
CLUSTER=${KIND_CLUSTER:-mlmodel}
OPERATOR_IMAGE=ghcr.io/mlops-dev/mlmodel-operator:0.1.0   # as in manifests/operator.yaml
RUNTIME_IMAGE=ghcr.io/mlops-dev/mlmodel-runtime:0.1.0
NS=mlmodel-demo

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (see README, 'On a kind cluster')" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "error: the Docker engine is not running" >&2; exit 2; }

step() { printf '\n==> %s\n' "$*"; }

step "kind cluster '$CLUSTER'"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kubectl config use-context "kind-$CLUSTER"

step "images"
docker build -f operator/Dockerfile -t "$OPERATOR_IMAGE" .
docker build -f runtime/Dockerfile -t "$RUNTIME_IMAGE" .
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$RUNTIME_IMAGE"

step "operator"
kubectl apply -k manifests/
kubectl -n mlmodel-system rollout status deployment/mlmodel-operator --timeout=180s

step "model store (trains the example models), iris v1, load"
kubectl apply -f examples/kind/model-store.yaml
kubectl -n "$NS" create configmap train-script --from-file=train.py=examples/train.py \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" rollout status deployment/model-store --timeout=300s
kubectl apply -f examples/kind/iris-v1.yaml
kubectl -n "$NS" wait mlmodel/iris --for=jsonpath='{.status.phase}'=Healthy --timeout=300s
kubectl apply -f examples/kind/load.yaml
kubectl get mlmodels -n "$NS"

step "iris v2: a canary rollout (Ctrl-C stops watching; the rollout goes on)"
kubectl apply -f examples/kind/iris-v2.yaml
if command -v kubectl-mlmodel >/dev/null; then
  kubectl mlmodel status iris -n "$NS" -w
else
  echo "(pip install -e . puts the kubectl-mlmodel plugin on PATH for a richer view)"
  kubectl get mlmodels -n "$NS" -w
fi
