#!/bin/sh
# The compose cluster's `auth-init` (runs as root, once per `docker compose up`, before NATS):
# `agentbus auth init` for /app/cluster.toml into the agentbus-auth volume (existing keys are
# kept, so restarts keep identities), then each service's key into that service's own volume
# (a container sees only its own key), the server's config for NATS, and the keys of the
# operator and of AGENTBUS_HOST_IDENTITIES (what joins from the host) into the host folder
# mounted at /operator (owned by AGENTBUS_OPERATOR_UID, mode 0600).
set -eu
AUTH=/secrets/auth
APP_UID=10001

AGENTBUS_DATA_DIR=/secrets agentbus auth init -f "${AGENTBUS_CLUSTER_FILE:-/app/cluster.toml}"
chown "$APP_UID:$APP_UID" "$AUTH" "$AUTH/nats-auth.conf"

for folder in /keys/*/; do
    name="$(basename "$folder")"
    if [ ! -f "$AUTH/$name.nk" ]; then
        echo "auth-init: no identity $name in the cluster file for the key volume $folder" >&2
        exit 1
    fi
    install -m 0600 -o "$APP_UID" -g "$APP_UID" "$AUTH/$name.nk" "$folder/key.nk"
done

# The operator's key, and those of the identities that join from the host (the demo's).
if [ -d /operator ]; then
    owner="${AGENTBUS_OPERATOR_UID:-0}"
    for name in operator ${AGENTBUS_HOST_IDENTITIES:-maintainer-sample-greeter sample-greeter}; do
        install -m 0600 -o "$owner" -g "$owner" "$AUTH/$name.nk" "/operator/$name.nk"
    done
    echo "auth-init: the operator's key (and the host identities') in the host folder of /operator"
fi
