#!/usr/bin/env bash
# A tour of the container cluster with the host's `agentbus` CLI (after `make compose-up`):
# health of NATS, the services, an event that every maintainer decides on, their decisions.
set -euo pipefail
cd "$(dirname "$0")/.."
export AGENTBUS_NATS_URL="${AGENTBUS_NATS_URL:-nats://127.0.0.1:${NATS_PORT:-4222}}"
# As the cluster's operator: the key its auth-init service left on the host.
export AGENTBUS_IDENTITY=operator
export AGENTBUS_NATS_NKEY_FILE="${AGENTBUS_NATS_NKEY_FILE:-${AGENTBUS_OPERATOR_DIR:-.agentbus/compose}/operator.nk}"
AGENTBUS=(${AGENTBUS_CLI:-uv run --frozen agentbus})
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "NATS with JetStream at $AGENTBUS_NATS_URL"
"${AGENTBUS[@]}" health
say "the services, found through \$SRV.INFO (instance ids are container ids)"
"${AGENTBUS[@]}" status --wait 1.5
say "an interface change, broadcast durably to every maintainer"
marker="demo.widget$RANDOM"
"${AGENTBUS[@]}" publish interface.changed "{\"interface\": \"$marker\", \"old_version\": \"1.0.0\", \"new_version\": \"1.1.0\", \"compatibility\": \"compatible\", \"reasons\": [\"field 'colour' was added\"]}"
say "their decisions on the audit stream"
for _ in $(seq 30); do
    count=$("${AGENTBUS[@]}" decisions --json --limit 200 | grep -c "$marker" || true)
    [[ $count -ge 4 ]] && break
    sleep 1
done
"${AGENTBUS[@]}" decisions --json --limit 200 | grep "$marker" | python3 -c '
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    print("%16s  %-8s %-9s %s: %s" % (d["component"], d["action"], d["outcome"], d["rule"], d["reason"][:60]))
' || true
echo "$count of 4 maintainers decided"
[[ $count -ge 4 ]]
