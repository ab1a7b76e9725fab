#!/usr/bin/env bash
# Build the wheelhouse the image installs from, on the host (the image build needs no network):
#   dist/wheelhouse/agentbus/  the workspace packages (uv build --all-packages)
#   dist/wheelhouse/deps/      every locked runtime dependency (uv export | pip wheel)
# The dependency wheels are rebuilt only when the exported requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."

UV="${UV:-uv}"
OUT="${WHEELHOUSE:-dist/wheelhouse}"
PYTHON_VERSION="${PYTHON_VERSION:-3.11}"   # the base images' Python (bookworm and python:3.11)

mkdir -p "$OUT/deps"
rm -rf "$OUT/agentbus"
$UV build --quiet --all-packages --wheel --out-dir "$OUT/agentbus"

$UV export --quiet --frozen --no-dev --all-packages --no-emit-workspace --no-header \
    --output-file "$OUT/requirements.txt.new"
if cmp -s "$OUT/requirements.txt.new" "$OUT/requirements.txt" && [[ -f "$OUT/deps/.complete" ]]; then
    rm "$OUT/requirements.txt.new"
    echo "dependency wheels are up to date ($(ls "$OUT"/deps/*.whl | wc -l) wheels)"
else
    mv "$OUT/requirements.txt.new" "$OUT/requirements.txt"
    rm -rf "$OUT/deps" && mkdir -p "$OUT/deps"
    # pip resolves nothing here (--no-deps): the list is uv.lock's, with its hashes.
    $UV tool run --quiet --python "$PYTHON_VERSION" --from pip pip wheel --quiet --no-deps \
        --require-hashes --wheel-dir "$OUT/deps" --requirement "$OUT/requirements.txt"
    touch "$OUT/deps/.complete"
    echo "downloaded $(ls "$OUT"/deps/*.whl | wc -l) dependency wheels"
fi
