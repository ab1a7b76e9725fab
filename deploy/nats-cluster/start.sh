#!/bin/sh
# Start one node of the compose cluster profile: the route password (made once by the
# `nats-route-secret` service, in the nats-route volume) into the variables nats.conf reads,
# then nats-server in place of this shell. NATS_SERVER_NAME comes from the compose file.
set -eu
password="$(cat /run/nats-route/password)"
if [ -z "$password" ]; then
    echo "nats-cluster: /run/nats-route/password is empty" >&2
    exit 1
fi
export NATS_ROUTE_PASSWORD="$password"
for node in 1 2 3; do
    export "NATS_ROUTE_$node=nats://route:$password@nats-$node:6222"
done
exec nats-server --config /etc/nats/nats.conf
