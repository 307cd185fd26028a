"""Production: HTTPS (unless SITE_SCHEME=http for a local trial), secrets required from the environment."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import BASE_DOMAIN, SITE_PORT, env, trusted_origins
from .keyfile import read_key_file, require_strong_secret_key

DEBUG = False
# The key comes from SECRET_KEY, or from the file named by SECRET_KEY_FILE (the Docker image's entry
# point generates it once into a volume); a missing, short or published key stops the start.
if env("SECRET_KEY", default=""):
    SECRET_KEY = require_strong_secret_key(env("SECRET_KEY"))
elif env("SECRET_KEY_FILE", default=""):
    SECRET_KEY = require_strong_secret_key(
        read_key_file(Path(env("SECRET_KEY_FILE"))), source=f"SECRET_KEY_FILE {env('SECRET_KEY_FILE')}"
    )
else:
    SECRET_KEY = require_strong_secret_key("")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HTTPS is the default: behind a proxy that terminates TLS and sets X-Forwarded-Proto, cookies are
# HTTPS-only, plain HTTP is redirected and HSTS is on. SITE_SCHEME=http is the switch for a trial on
# plain HTTP (docker-compose on localhost): browsers drop HTTPS-only cookies there, so sign-in would
# fail with a CSRF error; `manage.py doctor` warns when the scheme and the cookies disagree.
SITE_SCHEME = env("SITE_SCHEME", default="https")
if SITE_SCHEME not in ("http", "https"):
    raise ImproperlyConfigured(f"SITE_SCHEME must be http or https, not {SITE_SCHEME!r}.")
HTTPS = SITE_SCHEME == "https"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
LANGUAGE_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Forms are posted only from the public site and the tenants' sites, with the scheme above.
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS", default=trusted_origins(SITE_SCHEME, BASE_DOMAIN, SITE_PORT)
)
# gunicorn's workers are long-lived threads: keeping a connection for a minute saves a connect per
# request. (The development server and the tests close it after each request, see base.py.)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)  # noqa: F405
