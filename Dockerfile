FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends gettext && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir -e . gunicorn==23.0.0
COPY . .
# collectstatic needs settings that load: a throw-away random key, used for nothing else.
RUN DJANGO_SETTINGS_MODULE=crm.settings.production \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    python manage.py collectstatic --noinput \
    && python manage.py compilemessages --ignore=.venv -v0
EXPOSE 8000
# Generates the secret key into SECRET_KEY_FILE on first start when SECRET_KEY is not given.
ENTRYPOINT ["sh", "scripts/docker-entrypoint.sh"]
CMD ["gunicorn", "crm.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
