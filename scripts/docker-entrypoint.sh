#!/bin/sh
# The image's entry point. Without a SECRET_KEY from the environment, the key is kept in
# SECRET_KEY_FILE (a volume in docker-compose.yml): generated once, on the first start of any of the
# services, and reused by all of them afterwards. Then it runs the service's command.
set -eu
if [ -z "${SECRET_KEY:-}" ]; then
  if [ -z "${SECRET_KEY_FILE:-}" ]; then
    echo "Refusing to start: set SECRET_KEY (a random value of at least 50 characters) or SECRET_KEY_FILE." >&2
    exit 1
  fi
  python -m crm.settings.keyfile "$SECRET_KEY_FILE"
fi
exec "$@"
