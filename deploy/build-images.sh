#!/usr/bin/env bash
# Build every image of the compose cluster without a registry (what `make images` runs):
#   1. agentbus/base:bookworm             Debian bookworm from debootstrap (deploy/base/build.sh)
#   2. agentbus/prometheus-base:bookworm  Debian's prometheus on that base (metrics profile)
#   3. dist/wheelhouse                     the project's and its locked dependencies' wheels
#   4. agentbus/agentbus:latest, agentbus/prometheus:latest   through docker-compose.yml
# Steps 1 and 2 are skipped when their images exist (--force rebuilds them).
#   deploy/build-images.sh [--force] [--public]   --public: FROM the public base images instead
set -euo pipefail
cd "$(dirname "$0")/.."

FORCE=()
PUBLIC=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=(--force) ;;
        --public) PUBLIC=1 ;;
        *) echo "unknown option: $arg (--force, --public)" >&2; exit 2 ;;
    esac
done

if [[ $PUBLIC -eq 0 ]]; then
    deploy/base/build.sh "${FORCE[@]}"
    deploy/prometheus/build-base.sh "${FORCE[@]}"
    export BASE_IMAGE="${BASE_IMAGE:-agentbus/base:bookworm}"
    export PROMETHEUS_IMAGE="${PROMETHEUS_IMAGE:-agentbus/prometheus-base:bookworm}"
fi
deploy/wheels.sh

if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    COMPOSE=(docker-compose)
fi
started=$SECONDS
"${COMPOSE[@]}" --profile metrics build --quiet nats prometheus 2>&1 \
    | grep -v -e 'legacy builder is deprecated' -e 'Install the buildx' -e 'docs.docker.com/go/buildx' \
    -e '^ *$' || true
docker image inspect "${AGENTBUS_IMAGE:-agentbus/agentbus:latest}" >/dev/null
# The images these tags pointed at before (dangling now), and every install stage but the
# newest (the layer cache of the next build).
docker image prune --force --filter label=io.agentbus.role=app >/dev/null
docker images --quiet --filter dangling=true --filter label=io.agentbus.stage=install \
    | tail -n +2 | xargs --no-run-if-empty docker rmi >/dev/null 2>&1 || true
size=$(docker image inspect --format '{{.Size}}' "${AGENTBUS_IMAGE:-agentbus/agentbus:latest}")
echo "built ${AGENTBUS_IMAGE:-agentbus/agentbus:latest} (FROM ${BASE_IMAGE:-python:3.11-slim-bookworm}) in $((SECONDS - started)) s, $((size / 1000000)) MB"
