#!/usr/bin/env bash
# Installs every Debian 12 package that building, running and testing flowd needs.
# Idempotent: does nothing when all are present. Uses sudo when not root.
set -euo pipefail

packages=(
    # toolchain
    g++ cmake make pkg-config git ca-certificates
    # libraries
    libboost1.81-dev libsimdjson-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
    prometheus-cpp-dev libyaml-cpp-dev zlib1g-dev libssl-dev
    # cluster mode: the NATS C client (JetStream API) and, for the tests, the server
    libnats-dev nats-server
    # tests and benchmarks
    libgtest-dev libgmock-dev libbenchmark-dev clang-format curl procps util-linux nginx-light wrk
    # TLS tests make their CA and certificates with the openssl tool
    openssl
    # fuzzing (make fuzz): clang and its runtimes, libFuzzer included (-fsanitize=fuzzer)
    clang libclang-rt-14-dev
    # operators' kit tests: promtool + prometheus, systemd-analyze
    prometheus systemd
    # flow exporters stage: two real exporters reading a pcap (softflowd, pmacct's pmacctd),
    # and a second collector (nfdump's nfcapd)
    softflowd nfdump pmacct
    # the console's browser stage (tests/browser): headless chromium through chromedriver
    chromium chromium-driver python3-selenium
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi

echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
