# syntax=docker/dockerfile:1
# baton: one image for every part (sidecar, sts, policy-server, injector, demo).
# The image runs the esbuild bundle (npm run build, scripts/build.ts), not the
# TypeScript sources: no type stripping at run time and a few dozen chunks
# instead of 650+ modules, about 30 MB less RSS per sidecar (docs/performance.md).
ARG NODE_IMAGE=node:24-slim

# The bundle is plain JavaScript: built once on the builder's own platform, even for a multi-platform image.
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
WORKDIR /app
# .npmrc: legacy-peer-deps, which the lockfile was written with (a devDependency's unused peers stay out).
COPY package.json package-lock.json .npmrc ./
# With dev dependencies: esbuild bundles. --ignore-scripts: esbuild runs from its platform package,
# and the `node` devDependency (which pins Node for npm scripts) stays out; the base image's Node 24 runs the build.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY scripts ./scripts
COPY examples/shop.callgraph.yaml ./examples/
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# The OpenTelemetry packages and the graphviz wasm stay outside the bundle; production dependencies only.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="baton-mesh" \
      org.opencontainers.image.description="Identity-propagation sidecar: RFC 8693 token exchange with nested act chains" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# V8 otherwise lets a busy sidecar's young generation grow to 2 × 64 MiB;
# 16 MiB takes about 80 MB off each sidecar at no measured cost (docs/performance.md).
ENV NODE_OPTIONS=--max-semi-space-size=16
# glibc's default of eight malloc arenas per core holds memory the data plane never gives back; two took
# 4–10 MB off each sidecar at 1,000 req/s with no CPU change measured (docs/performance.md, #19).
ENV MALLOC_ARENA_MAX=2
# npm and corepack are not needed at run time; fewer tools in the image, less to exploit.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
 && mkdir -p /var/lib/baton/keys /var/lib/baton/sts-keys /var/lib/baton/redis /var/lib/baton/identities /var/lib/baton/policy-state /etc/baton \
 && chown -R 10001:10001 /var/lib/baton
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./dist
# A numeric non-root user, so Kubernetes can check runAsNonRoot; nothing
# under / is written at run time, so the root filesystem can be read-only.
USER 10001:10001
# Each part has its own health URL: compose and Kubernetes set it per service.
ENV BATON_HEALTHCHECK_URL=http://127.0.0.1:7072/readyz
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
  CMD ["node", "-e", "fetch(process.env.BATON_HEALTHCHECK_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/baton.mjs"]
CMD ["--help"]
