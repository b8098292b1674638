"""Django settings, all deployment values read from the environment (see `.env.example`).

Defaults fail closed: DEBUG is off, no host is allowed and there is no secret
key unless DEBUG is on, so a forgotten variable cannot expose patient data.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from workers.config import cpu_queue, default_device, inference_queue
from workers.env import env_bool, env_float, env_int, env_list, env_rate, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY", required=not DEBUG) or "insecure-debug-only-key"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The public address of the site, used in the URLs the API hands out when a
# proxy hides the real host.
SITE_URL = env_str("SITE_URL", "").rstrip("/")

INSTALLED_APPS = [
    # The admin, for superusers only (webapp/admin.py says why).
    "webapp.admin.SuperuserAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # API tokens, stored hashed (SHA-512): a database dump does not give them away.
    "knox",
    "axes",
    "django_filters",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "predictions",
    "dicom",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before anything reads the body (CSRF reads the form): oversized or chunked bodies stop here.
    "predictions.uploads.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise, so static files stay cacheable; patient data never is.
    "predictions.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "predictions.middleware.OrganisationTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide templates (the login and password pages) before the apps' own.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def postgres_timeouts(connect_s: int, statement_s: float) -> dict[str, object]:
    """libpq options: a connect limit, a statement limit, and the same limit on a silent link.

    The statement limit is enforced by the server; `tcp_user_timeout` also drops a
    connection whose data the server has not acknowledged for that long (a cut network).
    The server also ends a session that keeps a transaction open without a word for that
    long: a client lost mid-transaction (behind a relay that went dead without closing its
    connections, say) would otherwise hold its rows locked for ever, and every later
    update of those jobs would wait on it.
    """
    options: dict[str, object] = {"connect_timeout": connect_s}
    if statement_s:
        milliseconds = int(statement_s * 1000)
        options["options"] = (
            f"-c statement_timeout={milliseconds} "
            f"-c idle_in_transaction_session_timeout={milliseconds}"
        )
        options["tcp_user_timeout"] = milliseconds
    return options


DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        # A kept connection the database dropped (restart, cut) is replaced, not failed on.
        conn_health_checks=True,
    )
}
# Time limits on every database call, so a stalled database cannot hold a request (or a
# web server thread) for ever: seconds to connect, and seconds a statement may run (0: none).
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
DATABASE_STATEMENT_TIMEOUT = env_float("DATABASE_STATEMENT_TIMEOUT", 30.0, minimum=0.0)
# Write-ahead log: readers do not wait for the writer, and a commit is one append and one
# fsync of the log instead of a rollback journal written, synced and deleted (each request
# commits a few times). synchronous=FULL keeps every committed transaction through a power
# loss, as before: a job answered with 202 is never lost.
SQLITE_INIT_COMMAND = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the sweeper and the tests write concurrently: wait for the
    # lock instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": SQLITE_INIT_COMMAND,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        **postgres_timeouts(DATABASE_CONNECT_TIMEOUT, DATABASE_STATEMENT_TIMEOUT),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The lockout check runs first and refuses a locked-out login before any password is tried.
AUTHENTICATION_BACKENDS = [
    "predictions.security.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Uploaded scans and heat maps: never served from a public URL, only through
# views that check the caller's organisation.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# TLS (docs/operations.md, "HTTPS"). SITE_BEHIND_TLS: browsers reach the site over https
# only; it turns on the redirect, secure cookies and HSTS, each of which can be set alone.
SITE_BEHIND_TLS = env_bool("SITE_BEHIND_TLS", False)
# Trust X-Forwarded-Proto: only behind a proxy that sets it on every request (the compose
# file's nginx does), or a client could claim https.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SITE_BEHIND_TLS)
# Probes and workers call the web container directly, over the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^api/v1/internal/"]
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", SITE_BEHIND_TLS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 31_536_000 if SITE_BEHIND_TLS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
X_FRAME_OPTIONS = "DENY"
# Content Security Policy (django-csp 4), on everywhere: the portal and the admin load
# their scripts and styles from our own static files only, with no inline code; images
# may be data: URLs (Swagger UI's icons).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
    | ({"upgrade-insecure-requests": True} if SITE_BEHIND_TLS else {}),
}

# Uploads: bytes are checked before Pillow touches the file; pixels before it decodes.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1)
# 4096 x 4096: several times any MRI slice; a decoded RGB image of that size is 50 MB.
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 4096 * 4096, minimum=1)
# The largest request body: one image and its form. Bigger ones get 413 before they are read
# (predictions/uploads.py), and a file part is cut off as soon as it passes MAX_UPLOAD_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "predictions.uploads.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# DICOM in and out (docs/pacs.md). A study (a zip upload or one STOW-RS request) may be
# far larger than one slice, so it has limits of its own.
DICOM_MAX_STUDY_BYTES = env_int("DICOM_MAX_STUDY_BYTES", 512 * 1024 * 1024, minimum=1)
DICOM_MAX_FILES = env_int("DICOM_MAX_FILES", 2000, minimum=1)
DICOM_MAX_FRAMES = env_int("DICOM_MAX_FRAMES", 1000, minimum=1)
# Results go back to the PACS once a study has had no new instance for this long...
DICOM_STUDY_SETTLE_S = env_int("DICOM_STUDY_SETTLE_S", 10, minimum=0)
# ...and a failed sending is tried again after 30 s, 60 s, 120 s, ... up to this many times.
DICOM_DELIVERY_MAX_ATTEMPTS = env_int("DICOM_DELIVERY_MAX_ATTEMPTS", 8, minimum=1)
DICOM_DELIVERY_BACKOFF_S = env_int("DICOM_DELIVERY_BACKOFF_S", 30, minimum=1)
DICOM_DELIVERY_TIMEOUT_S = env_float("DICOM_DELIVERY_TIMEOUT_S", 30.0)

# Workers authenticate to the internal endpoints with this shared secret.
WORKER_SECRET = env_secret("WORKER_SECRET", required=not DEBUG) or "insecure-debug-worker-secret"

# A job not started within this many seconds of being queued, or running for
# longer than this, is handed to the queue again; after JOB_MAX_ATTEMPTS it fails.
JOB_QUEUED_TIMEOUT = env_int("JOB_QUEUED_TIMEOUT", 600, minimum=1)
JOB_RUNNING_TIMEOUT = env_int("JOB_RUNNING_TIMEOUT", 600, minimum=1)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
# The sweeper (`sweep_jobs --loop`) sends jobs that waited for the broker every
# JOB_DISPATCH_INTERVAL seconds, and looks for stale jobs every JOB_SWEEP_INTERVAL.
JOB_DISPATCH_INTERVAL = env_float("JOB_DISPATCH_INTERVAL", 2.0, minimum=0.1)
JOB_SWEEP_INTERVAL = env_float("JOB_SWEEP_INTERVAL", 30.0, minimum=1.0)
# ... and stores what the broker says (queue depths, workers) for the dashboard this often.
BROKER_STATUS_INTERVAL = env_float("BROKER_STATUS_INTERVAL", 10.0, minimum=1.0)
LOW_CONFIDENCE_THRESHOLD = env_float("LOW_CONFIDENCE_THRESHOLD", 0.7)
# Where the portal's dashboard links to Flower (behind its own basic auth); empty: no link.
FLOWER_URL = env_str("FLOWER_URL", "")

# The Celery app itself is configured in `workers.config`, shared with the workers.
INFERENCE_QUEUE = inference_queue()
# Jobs go to the GPU queue (INFERENCE_QUEUE) unless DEFAULT_DEVICE or the request says cpu.
CPU_QUEUE = cpu_queue()
DEFAULT_DEVICE = default_device()

# The broker, from the site: seconds to connect and to wait for any answer. A frozen Redis
# accepts connections and then never answers, so the read limit matters as much.
BROKER_CONNECT_TIMEOUT = env_float("BROKER_CONNECT_TIMEOUT", 1.0, minimum=0.1)
BROKER_SOCKET_TIMEOUT = env_float("BROKER_SOCKET_TIMEOUT", 1.0, minimum=0.1)

# Operations: GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>"; with no token set
# it answers only direct requests from the loopback address (see docs/operations.md).
METRICS_TOKEN = env_secret("METRICS_TOKEN", required=False)
# /readyz waits this long for workers to answer; the sweeper's idea of "stuck" for stack_status.
READYZ_WORKER_TIMEOUT = env_float("READYZ_WORKER_TIMEOUT", 1.0)
READYZ_REQUIRE_WORKER = env_bool("READYZ_REQUIRE_WORKER", True)

# Brute force (docs/operations.md): the client's address is REMOTE_ADDR unless proxies in
# front append it to X-Forwarded-For; say how many (1 behind the compose file's nginx).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
# Portal and admin logins (django-axes): LOGIN_FAILURE_LIMIT wrong passwords for one user
# from one address lock that pair out for LOGIN_LOCKOUT_MINUTES; a success resets the count.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "predictions.security.client_ip"
AXES_LOCKOUT_CALLABLE = "predictions.security.lockout_response"
# Wrong API tokens and worker secrets per address within AUTH_FAILURE_WINDOW_S seconds.
AUTH_FAILURE_LIMIT = env_int("AUTH_FAILURE_LIMIT", 10, minimum=1)
WORKER_AUTH_FAILURE_LIMIT = env_int("WORKER_AUTH_FAILURE_LIMIT", 10, minimum=1)
AUTH_FAILURE_WINDOW_S = env_int("AUTH_FAILURE_WINDOW_S", 300, minimum=1)
# Counters every web process shares: a table in the database the site already needs.
# Past MAX_ENTRIES Django culls a third of the live entries in key order, so the default
# of 300 would let anyone with enough addresses (or a busy site) wipe an attacker's
# failure count; the ceiling is out of reach, and `sweep_jobs` deletes expired counters.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "security": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "security_cache",
        "OPTIONS": {"MAX_ENTRIES": 10_000_000},
    },
}

# API tokens (django-rest-knox) are sent as "Authorization: Token <key>", as before; they
# last API_TOKEN_TTL_DAYS days, or for ever with 0 (the default, as DRF's tokens did).
_TOKEN_TTL_DAYS = env_int("API_TOKEN_TTL_DAYS", 0, minimum=0)
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_TTL": timedelta(days=_TOKEN_TTL_DAYS) if _TOKEN_TTL_DAYS else None,
}

# Files the site writes (uploaded scans, heat maps) are for its own user alone; the SQLite
# database too (predictions/apps.py).
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "predictions.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "predictions.security.ApiUserThrottle",
        "predictions.security.ApiAddressThrottle",
    ],
    # DRF's rate syntax (requests/second|minute|hour|day); "off" lifts a limit.
    "DEFAULT_THROTTLE_RATES": {
        "user": env_rate("API_THROTTLE_USER", "1000/minute"),
        "ip": env_rate("API_THROTTLE_IP", "2000/minute"),
    },
    "DEFAULT_PERMISSION_CLASSES": ["predictions.api.permissions.IsOrganisationMember"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # A lost database is a JSON 503, not Django's HTML 500 page.
    "EXCEPTION_HANDLER": "predictions.api.exceptions.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MRI classifier API",
    "DESCRIPTION": "Submit brain MRI slices for asynchronous classification and poll the jobs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # The worker-only endpoints are not part of the public contract.
    "PREPROCESSING_HOOKS": ["predictions.api.schema.exclude_internal_endpoints"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
