"""Test settings: the real PostgreSQL and Redis, mail kept in memory unless a test starts an SMTP server."""

import os

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In-process tests read django.core.mail.outbox; a live server process for browser tests writes
# files that the test reads (TEST_EMAIL_BACKEND / EMAIL_FILE_PATH are set by tests/browser/conftest.py).
EMAIL_BACKEND = env("TEST_EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(BASE_DIR / ".data" / "test-mail"))  # noqa: F405
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# Each test run uses its own Redis database and key prefix so runs never see each other's keys.
# (the process id keeps parallel runs and their worker processes apart; tests/conftest.py removes this
# run's keys after each test so cached values never leak from one test into another).
# One prefix per test run (its keys are removed between tests); a Celery worker that a test run starts
# is given the run's prefix in TEST_CACHE_KEY_PREFIX, so both see the same cache.
CACHES["default"]["KEY_PREFIX"] = env(  # noqa: F405
    "TEST_CACHE_KEY_PREFIX",
    default=f"{env('CACHE_KEY_PREFIX', default='crm-test')}-{os.getpid()}",  # noqa: F405
)
BASE_DOMAIN = "testserver.local"
ALLOWED_HOSTS = [BASE_DOMAIN, f".{BASE_DOMAIN}"]
CSRF_TRUSTED_ORIGINS = [f"http://*.{BASE_DOMAIN}"]
MEDIA_ROOT = BASE_DIR / ".data" / "test-media"  # noqa: F405
BACKUP_ROOT = BASE_DIR / ".data" / "test-backups"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
LOGGING["loggers"]["crm.request"]["level"] = env("REQUEST_LOG_LEVEL", default="WARNING")  # noqa: F405
# Serve static files straight from the source folders (no collectstatic in tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Celery results of this run live under the run's cache prefix, so the suite removes them with the
# run's cache keys (tests/conftest.py clear_run_cache) instead of leaving them in Redis.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"{CACHES['default']['KEY_PREFIX']}:celery:"}  # noqa: F405
