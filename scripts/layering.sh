#!/usr/bin/env bash
# `make layering`: each module includes only the modules below it (docs/ARCHITECTURE.md),
# and the lowest ones no third-party headers. The CMake libraries link the same way, so a
# call upward fails to link; this catches an upward #include of a header-only piece too.
set -euo pipefail
cd "$(dirname "$0")/.."

# module: the flowd modules it may include (besides itself).
declare -A allowed=(
    [domain]=""
    [store]="domain"
    [codec]="domain"
    [query]="domain store codec"
    [flow]="domain"
    [durable]="domain store codec auth metrics ingest"
    [auth]="domain"
    [metrics]=""
    [ingest]="domain store codec auth metrics"
    [http]="domain store codec query auth metrics ingest"
    [cluster]="domain store codec durable ingest metrics"
)

failed=0
for module in "${!allowed[@]}"; do
    for dir in "src/$module" "include/flowd/$module"; do
        [ -d "$dir" ] || continue
        while IFS= read -r hit; do
            used=$(sed -n 's|.*#include "flowd/\([a-z_]*\)/.*|\1|p' <<<"$hit")
            if [ "$used" != "$module" ] && [[ " ${allowed[$module]} " != *" $used "* ]]; then
                echo "layering: $hit: $module/ may include only: ${allowed[$module]:-nothing of flowd}"
                failed=1
            fi
        done < <(grep -rnE '#include "flowd/[a-z_]+/' "$dir" || true)
    done
done

third_party() {  # $1: what is forbidden, $2: message, $3...: directories
    local pattern=$1 message=$2
    shift 2
    if grep -rnE "#include <($pattern)" "$@"; then
        echo "layering: $message"
        failed=1
    fi
}
third_party 'boost|nlohmann|spdlog|prometheus|simdjson|yaml-cpp|nats)/' \
    "domain/ and store/ must not include third-party headers" \
    include/flowd/domain include/flowd/store src/domain src/store
third_party 'boost|nlohmann|spdlog|prometheus|simdjson|nats)/' \
    "flow/ may use domain/, std and yaml-cpp (the apps file) only" include/flowd/flow src/flow
third_party 'boost|spdlog|prometheus|nats)/' \
    "auth/ is tokens and rate limits: no HTTP, logging or metrics" include/flowd/auth src/auth
exit "$failed"
