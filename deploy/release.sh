#!/usr/bin/env bash
# The release steps of the delivery pipeline, shared by the Jenkinsfile and the GitHub Actions
# workflow so that both release the same way. Needs kubectl (with its built-in kustomize) and a
# kube context on the stage's cluster; `smoke` and the analysis also use the stockday image.
#
#   release.sh render OVERLAY STABLE_IMAGE [CANARY_IMAGE]   print the manifests, images pinned
#   release.sh deploy STAGE SHA        apply the stage at $REGISTRY/stockday:SHA, wait for it
#   release.sh smoke STAGE             read-only smoke test of the stage's site
#   release.sh canary SHA              one pod per service at SHA beside production, 30 % of users
#   release.sh analyze SHA             canary against stable over $CANARY_WINDOW s: exit 1 = roll back
#   release.sh promote SHA             production at SHA, then the canary removed
#   release.sh rollback                production as it was, then the canary removed
#
# Images are pinned in a throw-away kustomization wrapped around the overlay, so nothing in the
# repository is edited and no standalone kustomize is needed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S="$ROOT/deploy/k8s"
KUBECTL=${KUBECTL:-kubectl}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-600s}
# Seconds of live traffic the canary analysis compares: long enough for a bad release to show
# in the error rate and the p99 before anyone decides (docs/deploy.md, "How a release flows").
CANARY_WINDOW=${CANARY_WINDOW:-600}
# How long the load balancer takes to stop sending to a target group it no longer routes to.
DEREGISTRATION_SECONDS=${DEREGISTRATION_SECONDS:-45}
WORKLOADS=(frontend stock-symbol stock-price logo-resizer queue-worker)
HTTP_SERVICES=(frontend stock-symbol stock-price)
PRODUCTION=stockday-production

die() {
    echo "release.sh: $*" >&2
    exit 2
}

registry() {
    [[ -n ${REGISTRY:-} ]] || die "set REGISTRY to the image registry (ACCOUNT.dkr.ecr.REGION.amazonaws.com)"
    echo "$REGISTRY"
}

check_image() {
    [[ $1 == */*:* ]] || die "not an image reference with a registry and a tag: $1"
}

# An images entry of a kustomization: the placeholder NAME becomes the image reference IMAGE.
image_entry() {
    local name=$1 image=$2
    printf '  - name: %s\n    newName: %s\n    newTag: "%s"\n' "$name" "${image%:*}" "${image##*:}"
}

render() {
    local overlay=$1 stable=$2 canary=${3:-}
    [[ -d $K8S/overlays/$overlay ]] || die "no overlay $overlay"
    check_image "$stable"
    [[ -z $canary ]] || check_image "$canary"
    local wrapper
    wrapper=$(mktemp -d "$K8S/.release.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
    trap "rm -rf '$wrapper'" RETURN
    {
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        echo "resources:"
        echo "  - ../overlays/$overlay"
        echo "images:"
        image_entry REGISTRY/stockday "$stable"
        if [[ -n $canary ]]; then
            image_entry REGISTRY/stockday-canary "$canary"
        fi
    } >"$wrapper/kustomization.yaml"
    "$KUBECTL" kustomize "$wrapper"
}

wait_for() {
    local namespace=$1 suffix=$2 workload
    for workload in "${WORKLOADS[@]}"; do
        "$KUBECTL" rollout status "deployment/$workload$suffix" -n "$namespace" \
            --timeout "$ROLLOUT_TIMEOUT"
    done
}

apply() {
    local overlay=$1 namespace=$2
    shift 2
    render "$overlay" "$@" | "$KUBECTL" apply -f -
    wait_for "$namespace" ""
}

stable_image() {
    "$KUBECTL" get deployment frontend -n "$PRODUCTION" \
        -o jsonpath='{.spec.template.spec.containers[0].image}'
}

remove_canary() {
    # The Ingress no longer routes to the canary; let the load balancer drain it first.
    sleep "$DEREGISTRATION_SECONDS"
    "$KUBECTL" delete deployment,service -n "$PRODUCTION" -l track=canary --ignore-not-found
}

pod_metrics() {
    local service=$1 track=$2 ip
    for ip in $("$KUBECTL" get pods -n "$PRODUCTION" \
        -l "app.kubernetes.io/name=$service,track=$track" --field-selector status.phase=Running \
        -o jsonpath='{.items[*].status.podIP}'); do
        printf -- '--%s\nhttp://%s:8080/metrics\n' "$track" "$ip"
    done
}

analyze() {
    local sha=$1 image=$2 service verdict=0
    for service in "${HTTP_SERVICES[@]}"; do
        local sources=()
        mapfile -t sources < <(pod_metrics "$service" stable; pod_metrics "$service" canary)
        [[ " ${sources[*]} " == *" --canary "* ]] || die "no running canary pod of $service"
        echo "== $service"
        # Run from inside the cluster (namespace monitoring may scrape the pods' port 8080).
        "$KUBECTL" run "canary-analysis-${sha:0:12}-$service" -n monitoring --image "$image" \
            --restart=Never --rm -i --quiet --command -- \
            python -m stockday canary analyze "${sources[@]}" --service "$service" \
            --window "$CANARY_WINDOW" || verdict=1
    done
    return "$verdict"
}

smoke() {
    local namespace=$1 host
    host=$("$KUBECTL" get ingress stockday -n "$namespace" -o jsonpath='{.spec.rules[0].host}')
    (cd "$ROOT" && uv run --frozen stockday smoke "https://$host" --wait 120)
}

command=${1:-}
shift || true
case "$command" in
render)
    [[ $# -ge 2 ]] || die "usage: render OVERLAY STABLE_IMAGE [CANARY_IMAGE]"
    render "$@"
    ;;
deploy)
    [[ $# -eq 2 ]] || die "usage: deploy STAGE SHA"
    image="$(registry)/stockday:$2"
    apply "$1" "stockday-$1" "$image"
    ;;
smoke)
    [[ $# -eq 1 ]] || die "usage: smoke STAGE"
    smoke "stockday-$1"
    ;;
canary)
    [[ $# -eq 1 ]] || die "usage: canary SHA"
    image="$(registry)/stockday:$1"
    stable=$(stable_image)
    render production-canary "$stable" "$image" | "$KUBECTL" apply -f -
    wait_for "$PRODUCTION" -canary
    ;;
analyze)
    [[ $# -eq 1 ]] || die "usage: analyze SHA"
    image="$(registry)/stockday:$1"
    analyze "$1" "$image"
    ;;
promote)
    [[ $# -eq 1 ]] || die "usage: promote SHA"
    image="$(registry)/stockday:$1"
    apply production "$PRODUCTION" "$image"
    remove_canary
    ;;
rollback)
    [[ $# -eq 0 ]] || die "usage: rollback"
    stable=$(stable_image)
    apply production "$PRODUCTION" "$stable"
    remove_canary
    ;;
*)
    die "usage: release.sh render|deploy|smoke|canary|analyze|promote|rollback ... (see the header)"
    ;;
esac
