# One image for every gaffer role: `gaffer master`, `gaffer worker` and the
# client commands. The entrypoint is the CLI, so the command is its arguments:
#   docker run --rm gaffer master --id m1
#   docker run --rm gaffer worker --capacity 100
#   docker run --rm gaffer status
# Configuration comes from the environment: NATS_URL, ETCD_ENDPOINTS,
# NATS_USER, NATS_PASSWORD, GAFFER_TTL (see docs/deploy.md).

# --- build: install everything, compile TypeScript, drop dev dependencies ---
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY actors ./actors
RUN npx tsc -p tsconfig.json && cp -R src/web/public dist/src/web/public && npm prune --omit=dev --no-audit --no-fund

# --- run: compiled JavaScript and production dependencies only ---
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
ENTRYPOINT ["node", "dist/bin/gaffer.js"]
CMD ["--help"]
