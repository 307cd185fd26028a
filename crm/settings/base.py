"""Settings shared by every environment; every secret and address comes from the environment.

The environments (`dev`, `test`, `production`) import this module and override what differs.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.utils.translation import gettext_lazy as _
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# No default: production refuses a missing or weak key (see production.py); `make run` generates one
# and keeps it in .data/secret_key; the test settings set their own.
SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)

# Tenants live at <slug>.<BASE_DOMAIN>; the bare BASE_DOMAIN is the public (platform) site.
BASE_DOMAIN = env("BASE_DOMAIN", default="localhost")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[BASE_DOMAIN, f".{BASE_DOMAIN}"])
SITE_SCHEME = env("SITE_SCHEME", default="http")
SITE_PORT = env("SITE_PORT", default="")


def trusted_origins(scheme: str, domain: str, port: str) -> list[str]:
    """The public site and every tenant's site, exactly: scheme, host and (when not the default) port."""
    suffix = f":{port}" if port else ""
    return [f"{scheme}://{domain}{suffix}", f"{scheme}://*.{domain}{suffix}"]


CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS", default=trusted_origins(SITE_SCHEME, BASE_DOMAIN, SITE_PORT)
)

# --- Applications -------------------------------------------------------------------------------
# The public schema holds tenants, domains and platform admins only. Accounts, sessions, login
# throttling and audit rows exist in both: in public for the platform console, in each tenant for
# its own users.
SHARED_APPS = [
    "django_tenants",
    "crm.tenancy",
    "crm",
    "crm.accounts",
    "crm.audit",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "django.contrib.admin",
    "django_celery_beat",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "csp",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "crm.accounts",
    "crm.audit",
    "crm.jobs",
    "crm.notifications",
    "customers",
    "interactions",
    "interactions.followups",
    "interactions.service",
    "interactions.surveys",
    "segmentation",
    "loyalty",
    "loyalty.rewards",
    "loyalty.referrals",
    "dashboards",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenancy.Tenant"
TENANT_DOMAIN_MODEL = "tenancy.Domain"
PUBLIC_SCHEMA_NAME = "public"
# New tenants are cloned from this migrated template schema instead of running every migration.
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
TENANT_LIMIT_SET_CALLS = True
PUBLIC_SCHEMA_URLCONF = "crm.urls_public"
ROOT_URLCONF = "crm.urls_tenant"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# Unknown sub-domains get a friendly page, not a bare 404 from the middleware.
DEFAULT_NOT_FOUND_TENANT_VIEW = "crm.views.tenant_not_found"

MIDDLEWARE = [
    # /healthz and /readyz answer any Host over plain HTTP, before everything else (crm/ops/health.py);
    # then one log line per request with its tenant, user, status and duration (crm/ops/request_log.py).
    "crm.ops.health.HealthCheckMiddleware",
    "crm.ops.request_log.RequestLogMiddleware",
    # The security headers come first so that every response has them, including the pages the tenant
    # middleware answers by itself (unknown, suspended or not yet ready company) and static files.
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "crm.middleware.PermissionsPolicyMiddleware",
    "crm.tenancy.middleware.TenantMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "crm.accounts.middleware.SessionActivityMiddleware",
    "crm.accounts.middleware.UserPreferencesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "crm.context_processors.navigation",
            ],
        },
    },
]

# Django's form renderer with its input and select templates written in Python (the same text, a sixth
# of a customer list request less): crm/formrender.py.
FORM_RENDERER = "crm.formrender.FastWidgets"

WSGI_APPLICATION = "crm.wsgi.application"

# --- Database, cache, broker ---------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/crm")}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
# A unix-socket directory travels percent-encoded in the URL (postgres://user@%2Fpath%2Fto%2Fdir/db).
DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
# Persistent connections pay off only with a fixed pool of long-lived threads (gunicorn in
# production.py). The development server starts a thread per request and each kept its own
# connection (45-53 idle ones per instance), so elsewhere every request closes its connection.
# No JIT compilation of queries. PostgreSQL compiles any query its planner costs above 100,000, and
# that took 50-80 ms of a 300 ms customer search at 1,000,000 customers (a surname sorted by name,
# docs/search-plans.md); the dashboards' heaviest queries (1-9 s) ran as fast without it.
_options = DATABASES["default"].setdefault("OPTIONS", {})
_options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every cache key starts with the schema of the tenant being served.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="crm"),
    }
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# --- Queues: one per workload, so one tenant's long import cannot hold back another's reminders.
# The routing table, the one place that says which tasks go where (crm.celery.route_task): a task
# whose name matches a pattern (fnmatch) goes to that workload's queue, any other to the default queue
# (provisioning, dispatchers, housekeeping). docs/scaling.md explains the split.
TASK_ROUTES_BY_NAME = {
    "customers.imports.*": "imports",
    "customers.exports.*": "imports",
    "customers.dedupe.*": "imports",
    "segmentation.*": "recompute",
    "interactions.tasks.*": "imports",  # export and import of interactions
    "loyalty.tasks.points_earn_task": "imports",  # earning follows imports of orders in bulk
    "loyalty.tasks.opening_import_task": "imports",
    "loyalty.tasks.points_earn_all_tenants": "recompute",
    "loyalty.tasks.points_nightly_*": "recompute",
    "loyalty.tasks.loyalty_check_balances_*": "recompute",
    "loyalty.rewards.tasks.vouchers_expire_*": "recompute",
    "crm.notifications.*": "reminders",
    # A report's background refresh is seconds of work on a big tenant: not where reminders wait.
    "dashboards.tasks.report_refresh_task": "recompute",
    "dashboards.tasks.*": "reminders",
    "interactions.followups.*": "reminders",
    "interactions.service.tasks.sla_scan_*": "reminders",  # SLA warnings are due at a minute
    "interactions.surveys.tasks.survey_bulk_send_task": "imports",  # a bulk job over a segment
}
TASK_WORKLOADS = ("default", "imports", "recompute", "reminders")
# Queue names are "<prefix><workload>" (the default workload's is CELERY_TASK_DEFAULT_QUEUE): a prefix
# lets several installations share one Redis.
TASK_QUEUE_PREFIX = env("TASK_QUEUE_PREFIX", default="")
# The workloads a worker started without -Q consumes: all of them (`make run`'s one worker) unless
# WORKER_WORKLOADS names some (docker-compose runs one worker for default,reminders and one for the rest).
WORKER_WORKLOADS = env.list("WORKER_WORKLOADS", default=list(TASK_WORKLOADS))
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name)  # as Celery declares a queue it creates itself
    for name in (
        CELERY_TASK_DEFAULT_QUEUE if workload == "default" else f"{TASK_QUEUE_PREFIX}{workload}"
        for workload in WORKER_WORKLOADS
    )
]
CELERY_TASK_ROUTES = ("crm.celery.route_task",)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TENANT_CACHE_SECONDS = 30
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Task modules are found by autodiscovery, sub-packages included (crm/celery.py).
# Files of finished jobs (import uploads and error reports, exports) are kept this many days.
JOB_FILE_RETENTION_DAYS = env.int("JOB_FILE_RETENTION_DAYS", default=30)
# Periodic work runs in the public schema as a dispatcher that enqueues one task per ready tenant.
CELERY_BEAT_SCHEDULE: dict = {
    "fail-stale-jobs": {"task": "crm.jobs.tasks.fail_stale_jobs_all_tenants", "schedule": 60 * 30},
    # Import uploads, error reports and exports are deleted JOB_FILE_RETENTION_DAYS after the job ended.
    "delete-expired-job-files": {
        "task": "crm.jobs.tasks.delete_expired_job_files_all_tenants",
        "schedule": crontab(hour=19, minute=15),
    },
    # Customers in the recycle bin for more than 30 days are deleted for good (idempotent, so hourly is fine).
    "customers-purge-bin": {"task": "customers.tasks.purge_bin_all_tenants", "schedule": 60 * 60},
    # Companies deleted in the console more than TENANT_DELETE_GRACE_DAYS ago are purged (their final
    # backup is kept); idempotent, so hourly is fine.
    "tenancy-purge-deleted": {"task": "crm.tenancy.tasks.purge_deleted_all_tenants", "schedule": 60 * 60},
    # Each active company's users, customers, orders, storage and last activity, one row a day for the
    # console's usage charts; after the nightly jobs (21:00 UTC, 05:00 in China). An upsert per
    # (company, day), so a second run that day only refreshes the figures.
    "tenancy-usage-daily": {
        "task": "crm.tenancy.tasks.tenant_usage_all_tenants",
        "schedule": crontab(hour=21, minute=0),
    },
    # RFM, CLV, lifecycle stages and churn alerts, recomputed per tenant every night at 18:30 UTC
    # (02:30 in China); a tenant whose recompute is already running is joined, not started twice.
    # Follow-ups that fell due are handed to notifications once (idempotent, so every minute is fine).
    "followups-reminders": {
        "task": "interactions.followups.tasks.followup_reminders_all_tenants",
        "schedule": 60,
    },
    "segmentation-recompute-nightly": {
        "task": "segmentation.tasks.recompute_all_tenants",
        "schedule": crontab(hour=18, minute=30),
    },
    # Notification e-mails still pending (notify() also queues a send on commit, so this is the net).
    "notification-emails": {
        "task": "crm.notifications.tasks.notification_emails_all_tenants",
        "schedule": 60,
    },
    # The daily digest at 08:00 in each user's time zone: every 15 minutes, whoever's 08:00 has passed.
    "notification-digest": {
        "task": "crm.notifications.tasks.notification_digest_all_tenants",
        "schedule": crontab(minute="*/15"),
    },
    # Loyalty: the catch-up earning sweep of every customer (an order whose own sweep was lost earns
    # here; an order earns once whatever the path), before the nightly run.
    "loyalty-earn-catch-up": {
        "task": "loyalty.tasks.points_earn_all_tenants",
        "schedule": crontab(hour=16, minute=30),
    },
    # Loyalty: points past their expiry day, then the tier evaluation (downgrades after the grace
    # period), per tenant at 17:00 UTC (01:00 in China); idempotent, so a rerun expires nothing twice.
    "loyalty-nightly": {
        "task": "loyalty.tasks.points_nightly_all_tenants",
        "schedule": crontab(hour=17, minute=0),
    },
    # Every balance recomputed from its ledger; differences are logged as errors.
    "loyalty-check-balances": {
        "task": "loyalty.tasks.loyalty_check_balances_all_tenants",
        "schedule": crontab(hour=20, minute=0),
    },
    # The weekly report to managers, once Monday 08:00 has passed in the tenant's time zone (idempotent).
    "reports-weekly": {"task": "dashboards.tasks.weekly_summary_all_tenants", "schedule": 60 * 60},
    # Vouchers past their expiry day are marked expired (their points are not returned).
    "loyalty-vouchers-expire": {
        "task": "loyalty.rewards.tasks.vouchers_expire_all_tenants",
        "schedule": crontab(hour=17, minute=30),
    },
    # Service tickets: SLA warnings at 80% and escalations at breach, each raised once (idempotent).
    "service-sla-scan": {"task": "interactions.service.tasks.sla_scan_all_tenants", "schedule": 60},
    "surveys-send-invitations": {
        "task": "interactions.surveys.tasks.invitations_send_all_tenants",
        "schedule": 60,
    },
}

# --- Accounts ------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
INVITE_MAX_AGE = timedelta(days=7)
# Two-factor sign-in (django-otp): the issuer shown in authenticator apps; how long the step between
# the password and the code may take; how many wrong codes end that step (they also count for axes).
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Repeat CRM")
TWO_FACTOR_PENDING_SECONDS = 10 * 60
TWO_FACTOR_MAX_CODE_FAILURES = 5
TWO_FACTOR_RECOVERY_CODES = 10
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24

# Login throttling: five failures for one account from one address lock that pair for 15 minutes.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
# Sign-in matches e-mail addresses case-insensitively and trimmed, so failures are counted under the
# same normalised address: "MANAGER@x " and "manager@x" share one counter.
AXES_USERNAME_CALLABLE = "crm.accounts.lockout.axes_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "crm.accounts.views.lockout"
AXES_VERBOSE = False
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0)

# --- Security headers ----------------------------------------------------------------------------
# Content-Security-Policy (django-csp): scripts, styles, fonts and images from our own static files
# only, so a text that escaped escaping cannot run script. No inline script, handler or style=""
# attribute (tests/crm/test_unsafe_html.py); an inline <script> would need
# nonce="{{ request.csp_nonce }}". Bootstrap's CSS draws form controls with data: SVG images.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Features no page uses: an empty allow-list refuses them to the page and to any frame.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
}

# --- Internationalisation ------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# One date/time/number format per language (crm/formats/__init__.py explains the choice).
FORMAT_MODULE_PATH = ["crm.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
LANGUAGE_COOKIE_NAME = "crm_language"
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_HTTPONLY = True

# --- Static and media ----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))  # collectstatic's output
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    # Uploaded and generated files are kept under MEDIA_ROOT/<schema>/ (see crm.storage).
    "default": {"BACKEND": "crm.storage.TenantFileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Imports: bounds checked while an upload is read, before any full parse (customers.imports.parsing)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=200_000)  # data rows (XLSX; other imports' CSV)
# The customer import's CSV, read as a stream (customers.imports.parsing.MAX_CSV_UPLOAD_BYTES)
IMPORT_MAX_CSV_ROWS = env.int("IMPORT_MAX_CSV_ROWS", default=1_000_000)
IMPORT_MAX_BLANK_ROWS = env.int("IMPORT_MAX_BLANK_ROWS", default=100_000)  # blank rows, all told
IMPORT_MAX_COLUMNS = env.int("IMPORT_MAX_COLUMNS", default=200)
IMPORT_MAX_CELL_CHARS = env.int("IMPORT_MAX_CELL_CHARS", default=32_767)  # Excel's own limit
IMPORT_MAX_LINE_CHARS = env.int("IMPORT_MAX_LINE_CHARS", default=2_000_000)  # one CSV line
# XLSX is a zip: its parts all told may expand to this, and no large part more than this ratio.
IMPORT_MAX_UNCOMPRESSED_BYTES = env.int("IMPORT_MAX_UNCOMPRESSED_BYTES", default=300 * 1024 * 1024)
IMPORT_MAX_COMPRESSION_RATIO = env.int("IMPORT_MAX_COMPRESSION_RATIO", default=100)

# --- Reports (dashboards.caching): after a change, figures whose last computation took at least this
# many seconds are shown as they were ("as of 10:42, being updated") while a background task computes
# them again; quicker ones are computed again while the page waits, so a small company always sees
# fresh figures.
DASHBOARDS_REFRESH_IN_BACKGROUND_FROM = env.float("DASHBOARDS_REFRESH_IN_BACKGROUND_FROM", default=1.0)

# --- Interaction attachments (interactions.services): refused above this size or with another type
REWARD_IMAGE_MAX_BYTES = env.int("REWARD_IMAGE_MAX_BYTES", default=2 * 1024 * 1024)
INTERACTION_ATTACHMENT_MAX_BYTES = env.int("INTERACTION_ATTACHMENT_MAX_BYTES", default=5 * 1024 * 1024)
INTERACTION_ATTACHMENT_EXTENSIONS = env.list(
    "INTERACTION_ATTACHMENT_EXTENSIONS",
    default=["pdf", "png", "jpg", "jpeg", "gif", "webp", "txt", "csv", "docx", "xlsx", "mp3", "m4a", "amr"],
)
# How far ahead of now an interaction may be dated (clock drift, a call logged a moment early).
INTERACTION_FUTURE_LIMIT_MINUTES = env.int("INTERACTION_FUTURE_LIMIT_MINUTES", default=10)

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Email ---------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="CRM <no-reply@localhost>")
# A notification e-mail (or digest) claimed by a worker that did not mark it sent within this many
# seconds is claimed again and re-sent with the same Message-ID (crm.notifications.mailing).
NOTIFICATION_EMAIL_CLAIM_SECONDS = env.int("NOTIFICATION_EMAIL_CLAIM_SECONDS", default=300)
# SMTP connections a worker sends notification e-mails over at once (one batch at a time).
NOTIFICATION_EMAIL_CONNECTIONS = env.int("NOTIFICATION_EMAIL_CONNECTIONS", default=4)

# --- Platform ------------------------------------------------------------------------------------
RESERVED_TENANT_SLUGS = frozenset(
    {"public", "www", "admin", "api", "static", "media", "mail", "tenant-template", "tenant_template"}
)
DEFAULT_CURRENCY = "CNY"
# Tenant backups (`manage.py tenant_backup`, and the final backup kept when a company is deleted).
BACKUP_ROOT = Path(env("BACKUP_ROOT", default=str(BASE_DIR / ".data" / "backups")))
# A company deleted in the console is purged (schema, files) this many days later; until then it can be
# brought back, and its final backup is kept after the purge.
TENANT_DELETE_GRACE_DAYS = env.int("TENANT_DELETE_GRACE_DAYS", default=30)

# /readyz: how long each check may take, and how long the answer about the workers is reused.
READYZ_TIMEOUT_SECONDS = env.float("READYZ_TIMEOUT_SECONDS", default=1.0)
READYZ_WORKER_CACHE_SECONDS = env.float("READYZ_WORKER_CACHE_SECONDS", default=15.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "crm.ops.request_log.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "json": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        # One JSON line per request (crm/ops/request_log.py); REQUEST_LOG_LEVEL=WARNING keeps errors only.
        "crm.request": {
            "handlers": ["json"],
            "level": env("REQUEST_LOG_LEVEL", default="INFO"),
            "propagate": False,
        },
    },
}
