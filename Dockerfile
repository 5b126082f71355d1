# syntax=docker/dockerfile:1
#
# bulk-gateway container image.
#
#   docker build -t bulk-gateway .
#   docker run --rm -p 3000:3000 -e DATABASE_URL=postgres://… -e GATEWAY_API_KEYS=app:<key of 32+ characters>
#     -e PUBLIC_BASE_URL=https://gateway.example.org bulk-gateway   (one command)
#
# The image always runs with DATABASE_URL: the embedded PostgreSQL that `npm start` falls back to without it is
# for development only (its binaries, an optional dependency, are not in the image; without DATABASE_URL the
# container stops at start with "could not start the embedded PostgreSQL").
#
# test/deploy/production-install.test.ts runs this file's build commands outside a container (no engine there)
# and starts what the final stage holds; it reads the RUN, COPY, USER, ENV, EXPOSE, HEALTHCHECK and CMD lines
# below, so a change here that the test does not know fails it: change both together.

# Node 24 LTS; bump the pinned tag on purpose (engines.node in package.json is the floor, >=20.19).
ARG NODE_IMAGE=node:24.11.1-bookworm-slim

# ---- build: every dependency, compile, then drop what only the build needed ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: nothing may rely on an install script (prisma's would download a native engine the gateway
# never uses; migrations run on Prisma's schema engine as WebAssembly, src/db/migrate.ts).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# prisma generate (the rust-free client, compiled into dist/ with the rest) + tsc -p tsconfig.build.json
RUN npm run build
# --omit=optional as well as dev: @prisma/client declares `prisma` and `typescript` as optional peers, which
# npm keeps under --omit=dev alone (devOptional); the other optional packages are the embedded PostgreSQL
# binaries and pg-cloudflare, neither of which the image uses.
RUN npm prune --omit=dev --omit=optional

# ---- runtime: production node_modules, the compiled server, the migrations ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Migrations are applied at start-up from prisma/migrations, found next to package.json. Owned by root and
# only readable by the gateway's user: the process writes nothing to its own directory.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/prisma ./prisma
USER node
EXPOSE 3000
# node rather than curl (not in the slim image); PORT as the container sets it, 3000 by default.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/ready',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form, so SIGTERM reaches node itself: the gateway stops claiming jobs, releases the running ones for
# another replica and exits 0 within SHUTDOWN_TIMEOUT_SECONDS (give the orchestrator's grace period more).
CMD ["node", "--max-semi-space-size=4", "--liftoff-only", "dist/server.js"]
