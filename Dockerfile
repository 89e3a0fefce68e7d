# Dockerfile -- the holdline image: the node, its example config and the
# demo publisher, on Debian 12 to match the versions the code is written for
# (libmicrohttpd 0.9.75, hiredis 0.14.1, libevent 2.1, libconfig 1.5,
# libjwt 1.10).
#
#     docker build -t holdline:local .
#     docker run --rm -p 8080:8080 -e HOLDLINE_REDIS_HOST=redis.example holdline:local
#
# Two stages keep compilers and headers out of the image that runs.

FROM debian:bookworm-slim AS build

# The -dev packages bring the headers and pkg-config files the Makefile
# asks for; build-essential brings cc and make.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential \
        pkg-config \
        libmicrohttpd-dev \
        libhiredis-dev \
        libevent-dev \
        libconfig-dev \
        libjwt-dev \
        libjansson-dev \
        libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# DESTDIR gathers exactly what "make install" installs under /out, so the
# runtime stage copies the installed tree and nothing else from the build.
RUN make -j"$(nproc)" \
 && make install PREFIX=/usr/local DESTDIR=/out


FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="holdline" \
      org.opencontainers.image.description="Redis-backed HTTP long-poll (Comet) server"

# Only the shared libraries the node links against, plus curl and bash for
# the health check and the demo publisher; ca-certificates lets curl reach
# https URLs when the publisher is pointed at one.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libmicrohttpd12 \
        libhiredis0.14 \
        libevent-2.1-7 \
        libevent-pthreads-2.1-7 \
        libconfig9 \
        libjwt0 \
        libjansson4 \
        libssl3 \
        curl \
        bash \
        ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric id lets orchestrators that check runAsNonRoot verify the
# user without reading /etc/passwd, and keeps file ownership stable across
# rebuilds.
RUN groupadd --system --gid 10001 holdline \
 && useradd --system --uid 10001 --gid holdline \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin holdline

COPY --from=build /out/ /
COPY scripts/demo-publisher.sh /usr/local/bin/holdline-demo-publisher
# The mode is set here rather than trusted from the build context, because a
# checkout on some systems loses the executable bit.
RUN chmod 0755 /usr/local/bin/holdline-demo-publisher

# In a container the node must listen on all interfaces to be reachable,
# whatever the example config says; the port is pinned because EXPOSE and
# HEALTHCHECK below assume 8080. Both can still be overridden at run time.
ENV HOLDLINE_HTTP_BIND=0.0.0.0 \
    HOLDLINE_HTTP_PORT=8080

USER 10001:10001
EXPOSE 8080

# /healthz says the process is alive and serving HTTP; /readyz (Redis
# connected) is left to load balancers, so that a Redis outage does not make
# Docker report every node as unhealthy at once.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1

CMD ["holdline", "-c", "/usr/local/etc/holdline/holdline.cfg"]
