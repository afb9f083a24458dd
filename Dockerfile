# syntax=docker/dockerfile:1
# Chronicle's image: `chronicle serve` on port 8700, configured by environment variables (README).
# It runs against an external PostgreSQL (DATABASE_URL): the embedded PostgreSQL binaries, an optional
# dependency, are not installed. docker-compose.yml builds it for the full stack.

# Node.js 24 (Krypton), the active LTS line; package.json's engines (>=20.19) accept it.
ARG NODE_IMAGE=node:24.19.0-bookworm-slim

# Build: TypeScript → dist/ with the dev dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=optional --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime: production dependencies, the compiled code and the files it reads (migrations, OTLP protos,
# the console's pages and modules, served as they are: no build step; preact and htm come from node_modules).
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
COPY proto ./proto
COPY console ./console

# The image's own unprivileged user; the application files stay root's (read-only to it).
USER node
ENV CHRONICLE_HOST=0.0.0.0 \
    CHRONICLE_PORT=8700
EXPOSE 8700

# The slim image has no curl: Node's fetch. /ready is 200 once Postgres, migrations and NATS are up.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.CHRONICLE_PORT || 8700) + '/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# Chronicle handles SIGTERM itself (stops intake, flushes, exits), so node runs as PID 1 directly.
CMD ["node", "dist/cli/chronicle.js", "serve"]
