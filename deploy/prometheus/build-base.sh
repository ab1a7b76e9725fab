#!/usr/bin/env bash
# Offline stand-in for prom/prometheus: Debian's `prometheus` binary (apt-get download, no
# install) on the offline base image, with the public image's paths, user and entrypoint.
#   deploy/prometheus/build-base.sh [--force]     -> agentbus/prometheus-base:bookworm
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG="${PROMETHEUS_BASE_TAG:-agentbus/prometheus-base:bookworm}"
BASE="${BASE_TAG:-agentbus/base:bookworm}"
if [[ "${1:-}" != "--force" ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "prometheus base image $TAG exists (use --force to rebuild)"
    exit 0
fi
docker image inspect "$BASE" >/dev/null 2>&1 || deploy/base/build.sh
WORK="$(mktemp -d "${TMPDIR:-/tmp}/agentbus-prometheus.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && apt-get download prometheus >/dev/null 2>&1) || {
    apt-get update -qq && (cd "$WORK" && apt-get download prometheus >/dev/null)
}
dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/root"
mkdir -p "$WORK/context"
cp "$WORK/root/usr/bin/prometheus" "$WORK/context/prometheus"
cat >"$WORK/context/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY prometheus /bin/prometheus
RUN mkdir -p /etc/prometheus /prometheus && chown 65534:65534 /prometheus
USER 65534
WORKDIR /prometheus
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
docker build -q -t "$TAG" "$WORK/context" >/dev/null 2>&1 || docker build -t "$TAG" "$WORK/context"
echo "built $TAG"
