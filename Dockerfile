# The one image every Meridian workload runs (gateway, dispatch, trips, meridianctl jobs and
# init containers). Debian 12 packages only, as on a development machine; built with the
# release preset. scripts/image builds these stages without a container engine and runs the
# services from the runtime stage under runc (k8s/README.md): keep to FROM debian:12, COPY
# [--from=STAGE], RUN, WORKDIR, ENV and USER, which it carries out.
FROM debian:12 AS build
COPY scripts/setup /src/scripts/setup
RUN /src/scripts/setup --build
# only what the build reads, so that an edit of docs, k8s/ or tests reuses the cached build
COPY CMakeLists.txt CMakePresets.json /src/
COPY cmake /src/cmake
COPY schemas /src/schemas
COPY libgeo /src/libgeo
COPY services /src/services
COPY tools /src/tools
COPY loadgen /src/loadgen
WORKDIR /src
RUN cmake --preset release -DMERIDIAN_TESTS=OFF -DMERIDIAN_BENCH=OFF -DMERIDIAN_OPS_WEB=OFF \
    && cmake --build --preset release

FROM debian:12
# The runtime libraries of the binaries; libwebsockets-evlib-ev is the libev event-loop
# plugin lws loads at run time (the gateway's epoll loop): ldd does not show it.
RUN apt-get update && apt-get install -y --no-install-recommends \
      libpq5 libhiredis0.14 libwebsockets17 libwebsockets-evlib-ev libev4 librdkafka1 libjansson4 \
      libprotobuf-c1 libssl3 \
      osm2pgrouting osmium-tool postgresql-client ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/release/bin/ /usr/local/bin/
COPY data /usr/share/meridian/data
USER 65534:65534
