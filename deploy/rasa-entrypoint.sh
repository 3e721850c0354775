#!/bin/sh
# Starts Rasa the way bot/rasa_process.py (RasaSupervisor.command) does for the embedded Rasa, but
# listening on all interfaces of its container: `python -m bot.rasa_serve run`, which adds the API
# token from RASA_AUTH_TOKEN inside the process (never on the command line). Run it from the
# application's folder (the image's WORKDIR, /app).
#
#   RASA_ENDPOINTS   endpoints file rendered by `python -m bot.rasa_stores endpoints --out FILE`
#                    (gateway image); default bot/endpoints.yml (SQLite tracker: one Rasa only)
#   RASA_MODEL       a model file, or a folder whose newest model Rasa loads; default models/,
#                    the model trained in the image's build stage
#   RASA_LISTEN_PORT default 5005
#   RASA_AUTH_TOKEN, GATEWAY_CHANNEL_TOKEN, ACTION_SERVER_TOKEN, ACTION_ENDPOINT_URL: required
#   POSTGRESQL_SCHEMA, SQL_POOL_SIZE, SQL_MAX_OVERFLOW, RASA_TRACKER_PASSWORD,
#   RASA_LOCK_STORE_PASSWORD: what the rendered endpoints file needs (RasaStores.env())
set -eu

endpoints="${RASA_ENDPOINTS:-bot/endpoints.yml}"
model="${RASA_MODEL:-models}"
port="${RASA_LISTEN_PORT:-5005}"

fail() { echo "rasa-entrypoint: $*" >&2; exit 2; }

[ -f bot/credentials.yml ] || fail "run it from the application's folder (no bot/credentials.yml in $(pwd))"
[ -f "$endpoints" ] || fail "RASA_ENDPOINTS=$endpoints is not a file; render it with 'python -m bot.rasa_stores endpoints --out FILE' (gateway image)"
[ -e "$model" ] || fail "RASA_MODEL=$model does not exist"
for name in RASA_AUTH_TOKEN GATEWAY_CHANNEL_TOKEN ACTION_SERVER_TOKEN ACTION_ENDPOINT_URL; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || fail "$name is not set (README, Security: the same values as the gateway's)"
done
if [ "$endpoints" = bot/endpoints.yml ] && [ -z "${RASA_TRACKER_DB:-}" ]; then
  export RASA_TRACKER_DB=/tmp/rasa-tracker.db  # endpoints.yml names it; one Rasa, lost with the container
fi

exec python -m bot.rasa_serve run \
  --model "$model" \
  --endpoints "$endpoints" \
  --credentials bot/credentials.yml \
  --interface 0.0.0.0 --port "$port" \
  --enable-api
