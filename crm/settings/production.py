"""Production: HTTPS only, secrets required from the environment."""

from pathlib import Path

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
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
LANGUAGE_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SITE_SCHEME = "https"
# Forms are posted only from the public site and the tenants' sites, over HTTPS.
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS", default=trusted_origins("https", BASE_DOMAIN, SITE_PORT)
)
# gunicorn's workers are long-lived threads: keeping a connection for a minute saves a connect per
# request. (The development server and the tests close it after each request, see base.py.)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)  # noqa: F405
