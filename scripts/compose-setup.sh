#!/bin/sh
# docker-compose's one-shot `setup` service: migrations of every schema, the platform admin and, when
# DEMO_TENANT is set, a demo company with its admin and demo data (seeded once). Safe to run again.
set -eu
python manage.py setup_platform -v0
if [ -n "${DEMO_TENANT:-}" ]; then
  python manage.py provision_tenant "$DEMO_TENANT" --name "Demo Shop 示范商店" \
    --admin-email "${DEMO_ADMIN_EMAIL:?set DEMO_ADMIN_EMAIL}" \
    --admin-password "${DEMO_ADMIN_PASSWORD:?set DEMO_ADMIN_PASSWORD}" --if-missing
  python manage.py seed_demo --tenant "$DEMO_TENANT" --customers "${DEMO_CUSTOMERS:-2000}" --once
fi
echo "Setup finished."
