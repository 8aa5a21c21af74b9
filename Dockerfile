# The one image every Meridian workload runs (gateway, dispatch, trips, meridianctl jobs).
# Debian 12 packages only, as on a development machine; built with the release preset.
FROM debian:12 AS build
COPY scripts/setup /src/scripts/setup
RUN /src/scripts/setup
COPY . /src
WORKDIR /src
RUN cmake --preset release -DMERIDIAN_TESTS=OFF -DMERIDIAN_BENCH=OFF && cmake --build --preset release

FROM debian:12
RUN apt-get update && apt-get install -y --no-install-recommends \
      libpq5 libhiredis0.14 libwebsockets17 librdkafka1 libjansson4 libprotobuf-c1 libssl3 \
      osm2pgrouting osmium-tool postgresql-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/release/bin/ /usr/local/bin/
COPY --from=build /src/data/ /usr/share/meridian/data/
USER 65534:65534
