#!/bin/sh
# The image's entrypoint: `agentbus "$@"`, with this container's hostname as the instance id
# unless AGENTBUS_INSTANCE is set. The healthcheck runs through this script too, so
# `agentbus health --check` pings exactly the instance this container runs (Docker sets the
# hostname to the container id, unique per replica of a scaled service).
if [ -z "${AGENTBUS_INSTANCE:-}" ]; then
    AGENTBUS_INSTANCE="$(hostname)"
    export AGENTBUS_INSTANCE
fi
exec agentbus "$@"
