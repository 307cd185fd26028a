"""Local development (`make run`, which sets DATABASE_URL / REDIS_URL before Django starts).

- SECRET_KEY: from the environment, else generated once into .data/secret_key (0600, git-ignored) and
  reused, so a development instance never signs with a key published in the repository.
- DEBUG is off unless asked for (DEBUG=true): a 404 shows the friendly page, not Django's list of
  every URL pattern, and errors show the 500 page (their tracebacks go to the console). WhiteNoise
  serves the static files straight from the source folders, as the test settings do.
"""

from pathlib import Path

from .base import *  # noqa: F403
from .base import BASE_DIR, SECRET_KEY, env
from .keyfile import ensure_key_file, require_strong_secret_key

if SECRET_KEY:
    require_strong_secret_key(SECRET_KEY)
else:
    SECRET_KEY = ensure_key_file(Path(env("SECRET_KEY_FILE", default=str(BASE_DIR / ".data" / "secret_key"))))

DEBUG = env.bool("DEBUG", default=False)
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Mail (invitations, notification e-mails, the daily digest) is written to files under .data/mail/
# (one file per connection, readable with any text viewer) unless EMAIL_URL names a backend, e.g.
# consolemail:// or smtp://host:25.
if not env("EMAIL_URL", default=""):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(BASE_DIR / ".data" / "mail")
