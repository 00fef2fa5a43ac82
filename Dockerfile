# flowd image, two stages (STYLE.md section 13): build on Debian 12 with the packages of
# scripts/install-deps.sh, run on debian:bookworm-slim with only the shared libraries the
# binary links (ldd build/release/flowd), as a non-root user.
#
#   docker build -t flowd .
#   docker run --rm -p 8080:8080 -p 9464:9464 flowd
#
# The JSON decoder is compiled for haswell (AVX2, BMI2, PCLMUL) by default; flowd refuses a CPU
# without it at start; for older or other CPUs build a portable (slower) image with
#   docker build --build-arg FLOWD_CMAKE_ARGS=-DFLOWD_SIMD_ARCH= -t flowd .

FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: source edits do not reinstall them.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
ARG FLOWD_CMAKE_ARGS=""
# Tests run in CI, not here; the benchmarks are not shipped, so only the daemon is built.
RUN cmake --preset release -DFLOWD_BUILD_BENCH=OFF ${FLOWD_CMAKE_ARGS} \
 && cmake --build --preset release --target flowd -j "$(nproc)" \
 && ./build/release/flowd --version

FROM debian:bookworm-slim
# Runtime libraries only (libcivetweb1 is the prometheus-cpp exposer's HTTP server).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libsimdjson14 libspdlog1.10 libfmt9 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 \
      libcivetweb1 libyaml-cpp0.7 zlib1g libstdc++6 libgcc-s1 libnats3.4 \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric id, so orchestrators can check runAsNonRoot and volumes can be chowned.
RUN groupadd --gid 10001 flowd \
 && useradd --uid 10001 --gid flowd --home-dir /var/lib/flowd --no-create-home \
      --shell /usr/sbin/nologin flowd \
 && install -d -o flowd -g flowd -m 0750 /var/lib/flowd
COPY --from=build /src/build/release/flowd /usr/local/bin/flowd
COPY config/flowd.docker.yaml /etc/flowd/flowd.yaml
USER 10001:10001
WORKDIR /var/lib/flowd
# The data directory (write-ahead log, snapshots; data_dir in flowd.docker.yaml).
VOLUME /var/lib/flowd
# API, Prometheus exposer.
EXPOSE 8080 9464
# The slim image has no curl or wget: bash's /dev/tcp speaks the HTTP/1.0 request, and the
# status line must say 200 (503 while draining after SIGTERM). Assumes listen's port 8080.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == HTTP/1.?' 200 '* ]]"]
# SIGTERM drains in-flight requests for up to grace_period (default 10s), about as long as
# docker stop waits before SIGKILL: use docker stop -t 15 (or a shorter grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/flowd"]
CMD ["--config", "/etc/flowd/flowd.yaml"]
