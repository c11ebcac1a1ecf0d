"""Lineage settings: everything comes from the environment, with embedded defaults that run on one
machine with no other server (SQLite, a filesystem Celery broker, local media, an in-process chain).

Set `DATABASE_URL`, `CELERY_BROKER_URL`, `CACHE_URL`, `AWS_STORAGE_BUCKET_NAME` and `CHAIN_RPC_URL`
to scale out. `DEBUG=0` switches on the production security settings that `check --deploy` wants.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from notifications.secret_box import key_from_secret_key  # standard library only

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def secret(name: str, default=environ.Env.NOTSET) -> str:
    """A secret setting: the contents of the file named by `<NAME>_FILE` (trailing newlines stripped) when
    that variable is set (Docker/Kubernetes secrets, systemd credentials), else the variable `<NAME>`."""
    path = env.str(f"{name}_FILE", default="")
    if not path:
        return env.str(name, default=default)
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {error}") from error


VAR_DIR = Path(env.str("LINEAGE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=True)
# The embedded default key is for local runs only; production refuses to start without its own.
if DEBUG:
    SECRET_KEY = secret("SECRET_KEY", default="django-insecure-lineage-local-development-key-do-not-deploy")
else:
    SECRET_KEY = secret("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "allauth",
    "allauth.account",
    "accounts",
    "datanets",
    "models_registry",
    "attribution",
    "retrieval",
    "inference",
    "rewards",
    "insights",
    "governance",
    "notifications",
    "lineage",  # project-wide system checks (lineage/checks.py)
    "lineage.demo",
]

MIDDLEWARE = [
    "lineage.observability.RequestMetricsMiddleware",  # first, so it times everything below it
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "lineage.middleware.ApiNotFoundMiddleware",  # inside CommonMiddleware, so a missing slash still redirects
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "lineage.middleware.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "lineage.urls"
WSGI_APPLICATION = "lineage.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "lineage.context_processors.navigation",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

# --- Database: SQLite by default, PostgreSQL (psycopg 3) when DATABASE_URL is set.
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db_url_config(secret("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'lineage.sqlite3'}"))}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
# A pooled connection is pinged before a request reuses it: after a database restart the first request
# on each thread would otherwise fail on a dead connection (tests/hardening/test_faults_database_restart.py).
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=True))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let web, worker and beat share one SQLite file without "database is locked".
    # Transactions take the write lock when they begin (IMMEDIATE): a deferred transaction that reads and then
    # writes (claiming a job, counting a row quota) fails at once with "database is locked" when another writer
    # got in between, since SQLite cannot wait for a lock upgrade; an immediate one waits its turn (timeout).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
         "transaction_mode": "IMMEDIATE"}
    )
    # A file, not memory, so worker processes started by tests see the test database; one per test run.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url_config(secret("CACHE_URL", default="locmemcache://lineage"))}

# --- Storage: local media under var/media, S3-compatible when a bucket is configured.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "default_acl": None,
            "file_overwrite": False,
        },
    }
    # Explicit keys only when given (also as *_FILE); otherwise boto3's own chain (environment, instance role).
    for _option, _name in (("access_key", "AWS_ACCESS_KEY_ID"), ("secret_key", "AWS_SECRET_ACCESS_KEY")):
        if _value := secret(_name, default=""):
            _default_storage["OPTIONS"][_option] = _value
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Auth: django-allauth, login by email.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# Console email and optional verification by default; "mandatory" when configured for a real deployment.
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "account_login"
ACCOUNT_RATE_LIMITS = {
    "login_failed": env.str("RATE_LIMIT_LOGIN_FAILED", default="10/m/ip,5/5m/key"),
    "signup": env.str("RATE_LIMIT_SIGNUP", default="20/m/ip"),
    "reset_password": "20/m/ip,5/m/key",
}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Lineage <no-reply@lineage.local>")
if _email_url := secret("EMAIL_URL", default=""):
    vars().update(env.email_url_config(_email_url))

# --- API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttles.ApiKeyRateThrottle", "accounts.throttles.AnonBurstThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env.str("API_KEY_RATE", default="600/min"),
        "anon": env.str("API_ANON_RATE", default="120/min"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "lineage.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "lineage.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    # lineage.api.JSONParser bounds a JSON body's size and nesting before parsing it.
    "DEFAULT_PARSER_CLASSES": ["lineage.api.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lineage API",
    "DESCRIPTION": "Datanets, fine-tunes, attribution, serving and rewards. Authenticate with "
    "`Authorization: Bearer <api key>`; each key carries scopes (read, contribute, train, infer).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No online validator badge: Swagger UI would load it from swagger.io (the docs work offline). The schemas
    # section starts closed: open by default, Swagger UI drew it closed and its first press did nothing.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "defaultModelsExpandDepth": 0},
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation documents the errors any request can meet (401, 403, 404, 429, ...) in its error shape.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "lineage.api.document_standard_errors"],
}
API_KEY_SCOPES = ("read", "contribute", "train", "infer")

# --- Celery: JSON only, late acks, one task at a time per process, three queues.
CELERY_BROKER_URL = secret("CELERY_BROKER_URL", default="filesystem://")
_celery_fs = VAR_DIR / "celery"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (_celery_fs / _sub).mkdir(parents=True, exist_ok=True)
    # One folder in and out: every process on this machine reads and writes the same queue.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_fs / "queue"),
        "data_folder_out": str(_celery_fs / "queue"),
        "processed_folder": str(_celery_fs / "processed"),
        "control_folder": str(_celery_fs / "control"),
        "store_processed": False,
    }
else:
    # A message whose worker died unacked is redelivered after this long; it must outlast the longest
    # task (training runs hours), which is why a dead worker's job resumes late rather than twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", default=6 * 3600)}
_default_backend = (
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else f"file://{_celery_fs / 'results'}"
)
if _default_backend.startswith("file://"):
    (_celery_fs / "results").mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = secret("CELERY_RESULT_BACKEND", default=_default_backend)
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=2 * 3600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=2 * 3600 - 120)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
# Each queue has its own exchange and routing key: queues declared by name alone all bind to the default
# key, and every task would then be delivered to all three queues.
# `attribution`: receipts and fees of answers already given, on the worker that keeps the models and indexes
# loaded (never a web worker, never behind hours of training on `gpu`).
CELERY_TASK_QUEUES = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name)
                           for name in ("default", "gpu", "chain", "attribution"))
CELERY_TASK_ROUTES = {
    "inference.tasks.inference_settle_task": {"queue": "attribution"},
    "models_registry.tasks.*": {"queue": "gpu"},
    "attribution.tasks.*": {"queue": "gpu"},
    "rewards.tasks.chain_*": {"queue": "chain"},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Attempts at one long job (`lineage.jobs`): a job whose worker died this many times fails with a reason.
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {}  # each app's entries are added in its section below

# --- Lineage specifics
MB = 1024 * 1024
DATANETS_MAX_UPLOAD_BYTES = env.int("DATANETS_MAX_UPLOAD_BYTES", default=100 * MB)
DATANETS_MAX_DECOMPRESSED_BYTES = env.int("DATANETS_MAX_DECOMPRESSED_BYTES", default=500 * MB)
DATANETS_MAX_GZIP_RATIO = env.float("DATANETS_MAX_GZIP_RATIO", default=100.0)
DATANETS_MAX_LINE_BYTES = env.int("DATANETS_MAX_LINE_BYTES", default=1 * MB)
DATANETS_DAILY_CONTRIBUTIONS = env.int("DATANETS_DAILY_CONTRIBUTIONS", default=200)
DATANETS_DAILY_UPLOAD_BYTES = env.int("DATANETS_DAILY_UPLOAD_BYTES", default=1024 * MB)
DATANETS_NEAR_DUP_NUM_PERM = env.int("DATANETS_NEAR_DUP_NUM_PERM", default=128)
# Characters per near-duplicate shingle (the threshold is set per Datanet); changing either rebuilds indexes.
DATANETS_NEAR_DUP_SHINGLE_SIZE = env.int("DATANETS_NEAR_DUP_SHINGLE_SIZE", default=5)
DATANETS_CACHE_DIR = VAR_DIR / "cache" / "datanets"
TRAINING_TIME_LIMIT_S = env.int("TRAINING_TIME_LIMIT_S", default=6 * 3600)
TRAINING_MAX_DELIVERIES = env.int("TRAINING_MAX_DELIVERIES", default=JOB_MAX_ATTEMPTS)
TRAINING_CHECKPOINT_EVERY_STEPS = env.int("TRAINING_CHECKPOINT_EVERY_STEPS", default=50)
TRAINING_WORK_DIR = Path(env.str("TRAINING_WORK_DIR", default=str(VAR_DIR / "training")))
# Uploads past this size stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * MB
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * MB
HEALTHZ_BROKER_TIMEOUT_S = 2.0
AUDIT_DETAIL_MAX_BYTES = 16_384

# --- Rewards
# Chain: empty CHAIN_RPC_URL = an in-process eth-tester chain (one process only); the run profile sets
# http://127.0.0.1:8545 served by `manage.py chain_node`. The default key is eth-tester's first dev
# account (public knowledge): never use it on a real chain (`check --deploy` refuses it, and an empty
# CHAIN_RPC_URL, when DEBUG=0: lineage/checks.py).
CHAIN_RPC_URL = secret("CHAIN_RPC_URL", default="")  # a provider URL may carry an API key
CHAIN_PRIVATE_KEY = secret("CHAIN_PRIVATE_KEY", default="0x" + "0" * 63 + "1")
CHAIN_CONFIRMATIONS = env.int("CHAIN_CONFIRMATIONS", default=1)
CHAIN_ID = env.int("CHAIN_ID", default=131277322940537)  # eth-tester's chain id
CHAIN_RECEIPT_TIMEOUT_S = env.float("CHAIN_RECEIPT_TIMEOUT_S", default=120.0)
CHAIN_NODE_HOST = env.str("CHAIN_NODE_HOST", default="127.0.0.1")
CHAIN_NODE_PORT = env.int("CHAIN_NODE_PORT", default=8545)
WALLET_CHANGE_DELAY_HOURS = env.int("WALLET_CHANGE_DELAY_HOURS", default=48)
REWARDS_SIWE_DOMAIN = env.str("REWARDS_SIWE_DOMAIN", default="")  # default: SITE_URL's host
REWARDS_SIWE_TTL_MINUTES = env.int("REWARDS_SIWE_TTL_MINUTES", default=15)
REWARDS_CHAIN_AUTO_DEPLOY = env.bool("REWARDS_CHAIN_AUTO_DEPLOY", default=True)
REWARDS_TOKEN_ADDRESS = env.str("REWARDS_TOKEN_ADDRESS", default="")
REWARDS_DISTRIBUTOR_ADDRESS = env.str("REWARDS_DISTRIBUTOR_ADDRESS", default="")
REWARDS_DEPLOYED_AT_BLOCK = env.int("REWARDS_DEPLOYED_AT_BLOCK", default=0)
REWARDS_DEPOSIT_ADDRESS = env.str("REWARDS_DEPOSIT_ADDRESS", default="")  # default: the treasury (signer)
REWARDS_DEV_TOKEN_SUPPLY = env.int("REWARDS_DEV_TOKEN_SUPPLY", default=10**9 * 10**18)
REWARDS_RELAY_THRESHOLD = env.int("REWARDS_RELAY_THRESHOLD", default=0)  # base units; 0 = no relaying at close
REWARDS_RELAY_CLAIMS = env.bool("REWARDS_RELAY_CLAIMS", default=True)  # the "claim for me" button
# Starter credit: every account created by signing up gets this much OPEN inference credit once, from the
# grants account (`rewards.services.credit_starter_grant`). In OPEN, decimals allowed ("0.5"); 0 = no grant.
# Off by default in production: granted credit spent on one's own model comes back as claimable earnings, so a
# grant per free account is a faucet for whoever makes many accounts (docs/rewards.md).
REWARDS_STARTER_GRANT_OPEN = env.str("REWARDS_STARTER_GRANT_OPEN", default="10" if DEBUG else "0")
REWARDS_RELAY_BATCH = env.int("REWARDS_RELAY_BATCH", default=50)
REWARDS_EPOCH_LEASE_S = env.int("REWARDS_EPOCH_LEASE_S", default=900)
# How often earnings epochs close: an epoch closes once this long has passed since the last one froze. A passed
# governance proposal (`setEpochLength` on the parameter registry) overrides it (docs/governance.md); the beat
# checks every REWARDS_EPOCH_CHECK_EVERY_S whether a close is due.
REWARDS_EPOCH_LENGTH_S = env.int("REWARDS_EPOCH_LENGTH_S", default=7 * 86_400)
REWARDS_EPOCH_CHECK_EVERY_S = env.int("REWARDS_EPOCH_CHECK_EVERY_S", default=300)
REWARDS_ROWS_PER_CONTRIBUTOR = env.int("REWARDS_ROWS_PER_CONTRIBUTOR", default=10)
# Fees are held per inference and booked in batches (`rewards.services.fee_settle_batch`): by beat every
# REWARDS_SETTLE_EVERY_S, and on demand (at most one queued run per REWARDS_SETTLE_DEBOUNCE_S).
REWARDS_SETTLE_BATCH = env.int("REWARDS_SETTLE_BATCH", default=500)
REWARDS_SETTLE_EVERY_S = env.float("REWARDS_SETTLE_EVERY_S", default=5.0)
REWARDS_SETTLE_DEBOUNCE_S = env.int("REWARDS_SETTLE_DEBOUNCE_S", default=1)
REWARDS_SETTLE_MAX_S = env.float("REWARDS_SETTLE_MAX_S", default=30.0)
# A fee held when a queued answer was given waits this long for its receipt; then it is settled without one
# (as an empty receipt: the fee policy's fallback), so a lost attribution task never holds credit forever.
REWARDS_RECEIPT_WAIT_S = env.int("REWARDS_RECEIPT_WAIT_S", default=3600)
CELERY_BEAT_SCHEDULE.update({
    "rewards-epoch-close": {"task": "rewards.tasks.epoch_close_scheduled",
                            "schedule": timedelta(seconds=REWARDS_EPOCH_CHECK_EVERY_S),
                            "options": {"expires": REWARDS_EPOCH_CHECK_EVERY_S}},
    "rewards-index-deposits": {"task": "rewards.tasks.chain_index_deposits", "schedule": timedelta(minutes=1)},
    "rewards-index-claims": {"task": "rewards.tasks.chain_index_claims", "schedule": timedelta(minutes=1)},
    "rewards-reconcile": {"task": "rewards.tasks.chain_reconcile", "schedule": crontab(minute=17)},
    "rewards-settle-fees": {"task": "rewards.tasks.fees_settle", "schedule": timedelta(seconds=REWARDS_SETTLE_EVERY_S),
                            "options": {"expires": 2 * REWARDS_SETTLE_EVERY_S}},  # no pile-up while workers are down
})

# --- Governance (docs/governance.md)
# vOPEN + timelock + governor + parameter registry. With REWARDS_CHAIN_AUTO_DEPLOY (development) they are
# deployed next to the token and distributor; otherwise all four addresses must be set. The defaults
# are development values: small, so a whole proposal runs in a few seconds of blocks.
GOVERNANCE_VOTES_ADDRESS = env.str("GOVERNANCE_VOTES_ADDRESS", default="")
GOVERNANCE_TIMELOCK_ADDRESS = env.str("GOVERNANCE_TIMELOCK_ADDRESS", default="")
GOVERNANCE_GOVERNOR_ADDRESS = env.str("GOVERNANCE_GOVERNOR_ADDRESS", default="")
GOVERNANCE_PARAMETERS_ADDRESS = env.str("GOVERNANCE_PARAMETERS_ADDRESS", default="")
GOVERNANCE_DEPLOYED_AT_BLOCK = env.int("GOVERNANCE_DEPLOYED_AT_BLOCK", default=0)
GOVERNANCE_VOTING_DELAY_BLOCKS = env.int("GOVERNANCE_VOTING_DELAY_BLOCKS", default=1)
GOVERNANCE_VOTING_PERIOD_BLOCKS = env.int("GOVERNANCE_VOTING_PERIOD_BLOCKS", default=10)
GOVERNANCE_PROPOSAL_THRESHOLD = env.int("GOVERNANCE_PROPOSAL_THRESHOLD", default=0)  # vOPEN base units
GOVERNANCE_QUORUM_PERCENT = env.int("GOVERNANCE_QUORUM_PERCENT", default=4)
GOVERNANCE_TIMELOCK_DELAY_S = env.int("GOVERNANCE_TIMELOCK_DELAY_S", default=1)
GOVERNANCE_MAX_PROTOCOL_BPS = env.int("GOVERNANCE_MAX_PROTOCOL_BPS", default=2_000)
GOVERNANCE_MAX_OWNER_BPS = env.int("GOVERNANCE_MAX_OWNER_BPS", default=5_000)
GOVERNANCE_MIN_CONTRIBUTORS_BPS = env.int("GOVERNANCE_MIN_CONTRIBUTORS_BPS", default=4_000)
CELERY_TASK_ROUTES["governance.tasks.chain_*"] = {"queue": "chain"}
CELERY_BEAT_SCHEDULE["governance-index"] = {"task": "governance.tasks.chain_index_governance",
                                            "schedule": timedelta(minutes=1)}

# --- Notifications and webhooks (docs/notifications.md)
# Outside development a webhook URL must be https and resolve only to public addresses (checked when added and
# at every delivery); development and tests may post to local servers.
WEBHOOKS_ALLOW_PRIVATE_URLS = env.bool("WEBHOOKS_ALLOW_PRIVATE_URLS", default=DEBUG)
WEBHOOKS_TIMEOUT_S = env.float("WEBHOOKS_TIMEOUT_S", default=10.0)  # per connect/read; the endpoint must answer in time
WEBHOOKS_MAX_ATTEMPTS = env.int("WEBHOOKS_MAX_ATTEMPTS", default=8)  # then the delivery is marked failed
WEBHOOKS_RETRY_BASE_S = env.int("WEBHOOKS_RETRY_BASE_S", default=30)  # 30 s, 1 min, 2 min, ... after each failure
WEBHOOKS_RETRY_MAX_S = env.int("WEBHOOKS_RETRY_MAX_S", default=6 * 3600)
WEBHOOKS_MAX_PER_USER = env.int("WEBHOOKS_MAX_PER_USER", default=20)
# Encrypts webhook signing secrets at rest (notifications/secret_box.py); also read from *_FILE. Its default is
# derived from SECRET_KEY: set this on its own before rotating SECRET_KEY, or the stored secrets become unreadable
# (a changed key is taken into use by `manage.py notifications_rotate_secret_key`, docs/notifications.md).
NOTIFICATIONS_SECRET_KEY = secret("NOTIFICATIONS_SECRET_KEY", default="") or key_from_secret_key(SECRET_KEY)

# --- Attribution
# Index builds run on the gpu queue when a model version registers; receipts are scored in-process.
ATTRIBUTION_K = env.int("ATTRIBUTION_K", default=1024)  # projected gradient dimensions
ATTRIBUTION_TOP_K = env.int("ATTRIBUTION_TOP_K", default=10)  # rows named in a receipt
# Share policy (attribution/engine/shares.py): credit groups of rows are paid when their score beats the group's
# noise measured on held-out queries, Benjamini-Hochberg at this false-discovery rate across groups.
ATTRIBUTION_FDR = env.float("ATTRIBUTION_FDR", default=0.1)
ATTRIBUTION_TOP_GROUPS = env.int("ATTRIBUTION_TOP_GROUPS", default=50)  # most credit groups paid per answer
ATTRIBUTION_GROUP_SIZE = env.int("ATTRIBUTION_GROUP_SIZE", default=16)  # rows per credit group (k-means on gradients)
# Two rows whose projected gradients have at least this cosine (and norms within 10%) are one duplicate cluster:
# the first uploaded keeps the credit (attribution/engine/credit.py).
ATTRIBUTION_DUPLICATE_COSINE = env.float("ATTRIBUTION_DUPLICATE_COSINE", default=0.99)
ATTRIBUTION_CURVATURE = env.str("ATTRIBUTION_CURVATURE", default="fisher")  # or empirical_fisher
# One damping for everything a receipt shows and pays. "weighted_mean_eigenvalue": λ = ratio × tr(F²)/tr(F), the
# curvature-weighted mean eigenvalue, which does not shrink as k grows; on bench/attribution_convex.py (d = 10,250)
# its best ratio was 0.01 at every k from 141 to 1,024, where the old rule (ratio × tr(F)/k) wanted 0.1 to 1.
ATTRIBUTION_DAMPING_RULE = env.str("ATTRIBUTION_DAMPING_RULE", default="weighted_mean_eigenvalue")
ATTRIBUTION_DAMPING_RATIO = env.float("ATTRIBUTION_DAMPING_RATIO", default=0.01)
# eigenbasis: ATTRIBUTION_EIGENBASIS_FRACTION of each layer's k dimensions are its leading KFAC eigen-directions,
# fitted on the first ATTRIBUTION_EIGENBASIS_ROWS training rows, the rest a seeded random projection of what they
# leave out (attribution/engine/eigenbasis.py); or orthogonal, gaussian, rademacher (seeded random subspaces only).
# Measured on bench/attribution_convex.py at the production k/d: row LDS 0.809 against 0.741 orthogonal (exact
# influence 0.941); the random tenth keeps rows that differ in one word apart (bench/attribution_adversarial.py).
ATTRIBUTION_PROJECTION = env.str("ATTRIBUTION_PROJECTION", default="eigenbasis")
ATTRIBUTION_EIGENBASIS_ROWS = env.int("ATTRIBUTION_EIGENBASIS_ROWS", default=4096)
ATTRIBUTION_EIGENBASIS_FRACTION = env.float("ATTRIBUTION_EIGENBASIS_FRACTION", default=0.9)
# Memory (MiB) a build may hold the fit rows' unprojected gradients in, so that they are not taken twice (one pass
# over the data instead of two for the first rows); changes the build's time, never the index.
ATTRIBUTION_GRADIENT_BUFFER_MB = env.int("ATTRIBUTION_GRADIENT_BUFFER_MB", default=1024)
ATTRIBUTION_BATCH_SIZE = env.int("ATTRIBUTION_BATCH_SIZE", default=16)
ATTRIBUTION_SHARD_ROWS = env.int("ATTRIBUTION_SHARD_ROWS", default=65536)
ATTRIBUTION_ROWS_PER_CONTRIBUTOR = env.int("ATTRIBUTION_ROWS_PER_CONTRIBUTOR", default=10)  # contributor_rows
ATTRIBUTION_MISLABEL_Z = env.float("ATTRIBUTION_MISLABEL_Z", default=3.0)  # robust z for "likely mislabeled"
# Rows that together are worth significantly less than this fraction of as many typical rows on the held-out
# split (Benjamini-Hochberg at the FDR): a credit group of such rows earns nothing, a contributor's earnings are
# held for review (attribution/engine/credit.py low_value_sets).
ATTRIBUTION_LOW_VALUE_RATIO = env.float("ATTRIBUTION_LOW_VALUE_RATIO", default=0.5)
ATTRIBUTION_LOW_VALUE_FDR = env.float("ATTRIBUTION_LOW_VALUE_FDR", default=0.05)
ATTRIBUTION_VALUATION_TOP_N = env.int("ATTRIBUTION_VALUATION_TOP_N", default=20)
ATTRIBUTION_MAX_NEW_TOKENS = env.int("ATTRIBUTION_MAX_NEW_TOKENS", default=32)  # when the API generates the output
ATTRIBUTION_CACHE_MODELS = env.int("ATTRIBUTION_CACHE_MODELS", default=4)  # models + indexes held per process (LRU)
ATTRIBUTION_DEVICE = env.str("ATTRIBUTION_DEVICE", default="auto")  # auto, cpu or cuda
ATTRIBUTION_BUILD_ON_REGISTER = env.bool("ATTRIBUTION_BUILD_ON_REGISTER", default=True)
ATTRIBUTION_BUILD_TIME_LIMIT_S = env.int("ATTRIBUTION_BUILD_TIME_LIMIT_S", default=6 * 3600)
ATTRIBUTION_CACHE_DIR = Path(env.str("ATTRIBUTION_CACHE_DIR", default=str(VAR_DIR / "cache" / "attribution")))

# --- Documents and retrieval: a Documents Datanet's uploads are split into passages (datanets/ingest/
# document_rows.py); each published version gets a retrieval index (MiniLM + usearch + BM25, retrieval/engine/)
# built on the gpu queue and searched at /api/v1/datanets/<slug>/versions/<n>/search/.
DATANETS_MAX_DOCUMENT_BYTES = env.int("DATANETS_MAX_DOCUMENT_BYTES", default=50 * MB)  # one document, as uploaded
DATANETS_MAX_DOCUMENTS_PER_UPLOAD = env.int("DATANETS_MAX_DOCUMENTS_PER_UPLOAD", default=200)  # files or zip members
DATANETS_PASSAGE_MAX_TOKENS = env.int("DATANETS_PASSAGE_MAX_TOKENS", default=192)  # MiniLM reads 256 at most
DATANETS_PASSAGE_OVERLAP_TOKENS = env.int("DATANETS_PASSAGE_OVERLAP_TOKENS", default=32)
RETRIEVAL_DEVICE = env.str("RETRIEVAL_DEVICE", default="auto")  # where passages are embedded: auto, cpu or cuda
RETRIEVAL_BUILD_TIME_LIMIT_S = env.int("RETRIEVAL_BUILD_TIME_LIMIT_S", default=2 * 3600)
RETRIEVAL_CACHE_INDEXES = env.int("RETRIEVAL_CACHE_INDEXES", default=16)  # opened indexes held per process (LRU)
RETRIEVAL_CACHE_DIR = Path(env.str("RETRIEVAL_CACHE_DIR", default=str(VAR_DIR / "cache" / "retrieval")))
RETRIEVAL_MAX_K = env.int("RETRIEVAL_MAX_K", default=50)  # results one search may ask for
RETRIEVAL_MAX_QUERY_CHARS = env.int("RETRIEVAL_MAX_QUERY_CHARS", default=1000)
CELERY_TASK_ROUTES["retrieval.tasks.*"] = {"queue": "gpu"}
# Verbatim spans of causal answers (attribution/engine/verbatim.py): a repeat shorter than this many tokens is
# ordinary phrasing, not a copy; each span names at most this many of the rows holding it (and their total).
ATTRIBUTION_VERBATIM_MIN_TOKENS = env.int("ATTRIBUTION_VERBATIM_MIN_TOKENS", default=8)
ATTRIBUTION_VERBATIM_MAX_ROWS = env.int("ATTRIBUTION_VERBATIM_MAX_ROWS", default=10)

# --- Inference
# The model server (`manage.py serve_models`) owns the models and the GPU; the web tier proxies to it.
INFERENCE_SERVER_URL = env.str("INFERENCE_SERVER_URL", default="http://127.0.0.1:8100")
# Several model servers: INFERENCE_SERVER_URLS="http://gpu-a:8100,http://gpu-b:8100"; a single
# INFERENCE_SERVER_URL is the one-element list. The web tier's client reads INFERENCE_SERVER_URL, which
# carries the list comma-joined, and routes each request to a healthy server holding its adapter.
INFERENCE_SERVER_URLS = env.list("INFERENCE_SERVER_URLS", default=[]) or [
    url.strip() for url in INFERENCE_SERVER_URL.split(",") if url.strip()]
INFERENCE_SERVER_URL = ",".join(INFERENCE_SERVER_URLS)
# Dense and hybrid searches embed their query with the bundled MiniLM: on the model servers (their
# POST /v1/embeddings; web processes then never load torch) or, in this process, as `make run` does. In this
# process by default only when no model server is configured (neither variable above set).
RETRIEVAL_EMBED_IN_PROCESS = env.bool("RETRIEVAL_EMBED_IN_PROCESS", default=not (
    os.environ.get("INFERENCE_SERVER_URLS", "").strip() or os.environ.get("INFERENCE_SERVER_URL", "").strip()))
RETRIEVAL_EMBED_TIMEOUT_S = env.float("RETRIEVAL_EMBED_TIMEOUT_S", default=30.0)  # web -> model server, one query
# The bearer token shared by the web tier and every model server (they refuse requests without it). Empty:
# a model server listens on loopback only.
INFERENCE_SERVER_TOKEN = secret("INFERENCE_SERVER_TOKEN", default="")
# Where a model server loads bases and adapters from (by id, never by a caller's path); serve_models
# publishes the deployed versions' files into it.
INFERENCE_MODEL_ROOT = Path(env.str("INFERENCE_MODEL_ROOT", default=str(VAR_DIR / "serving")))
# The model root is kept under this size by removing the least recently used adapters no server holds
# (after each load, and `manage.py inference_prune_model_root`); 0 = no bound.
INFERENCE_MODEL_ROOT_MAX_BYTES = env.int("INFERENCE_MODEL_ROOT_MAX_BYTES", default=20 * 2**30)
INFERENCE_BASE_REPLICAS = env.int("INFERENCE_BASE_REPLICAS", default=0)  # servers per base (serve_models --no-server); 0 = all
INFERENCE_SERVER_REQUEST_TIMEOUT_S = env.float("INFERENCE_SERVER_REQUEST_TIMEOUT_S", default=300.0)  # per request, server side
INFERENCE_SERVER_KEEPALIVE_S = env.float("INFERENCE_SERVER_KEEPALIVE_S", default=5.0)  # idle connection kept open
INFERENCE_SERVER_GRACE_S = env.float("INFERENCE_SERVER_GRACE_S", default=30.0)  # running answers finish on shutdown
INFERENCE_SLOTS = env.int("INFERENCE_SLOTS", default=8)  # adapters resident on device per base model
INFERENCE_MAX_RANK = env.int("INFERENCE_MAX_RANK", default=16)
INFERENCE_MAX_BATCH_ROWS = env.int("INFERENCE_MAX_BATCH_ROWS", default=32)
INFERENCE_NUM_LABELS = env.int("INFERENCE_NUM_LABELS", default=16)  # shared classifier head width (padded)
INFERENCE_DEVICE = env.str("INFERENCE_DEVICE", default="")  # empty: cuda when available, else cpu
INFERENCE_THREADS = env.int("INFERENCE_THREADS", default=0)  # torch CPU threads in the model server; 0 = torch's
INFERENCE_POLL_S = env.float("INFERENCE_POLL_S", default=3.0)  # how often serve_models re-reads deployments
INFERENCE_TIMEOUT_S = env.float("INFERENCE_TIMEOUT_S", default=120.0)  # web -> model server read timeout
# A streamed answer's total time in the web tier. The read timeout above bounds each wait only, so a server that
# keeps a stream alive (keep-alive comments, a token now and then) would hold a web thread forever. Past this the
# stream ends with an `upstream_error` event (`model_server_timeout`) and `[DONE]`, recorded failed and uncharged.
# Longer than INFERENCE_SERVER_REQUEST_TIMEOUT_S, so a Lineage model server's own deadline normally answers first.
try:
    INFERENCE_STREAM_MAX_S = env.float("INFERENCE_STREAM_MAX_S", default=360.0)
except ValueError:
    INFERENCE_STREAM_MAX_S = -1.0
if not 0 < INFERENCE_STREAM_MAX_S < float("inf"):
    raise ImproperlyConfigured(f"INFERENCE_STREAM_MAX_S={os.environ.get('INFERENCE_STREAM_MAX_S')!r} is not a "
                               "positive number of seconds: set it to how long one streamed answer may last, e.g. "
                               "360 (or unset it for that default).")
INFERENCE_MAX_PROMPT_CHARS = env.int("INFERENCE_MAX_PROMPT_CHARS", default=32_000)
INFERENCE_MAX_TOKENS_DEFAULT = env.int("INFERENCE_MAX_TOKENS_DEFAULT", default=64)
INFERENCE_MAX_TOKENS_LIMIT = env.int("INFERENCE_MAX_TOKENS_LIMIT", default=1024)
INFERENCE_RECEIPTS_ASYNC = env.bool("INFERENCE_RECEIPTS_ASYNC", default=True)  # queue receipt + fee (attribution queue); 0 = in the request

# --- Insights
# The dashboards read summary tables that beat refreshes every INSIGHTS_REFRESH_EVERY_S for the last
# INSIGHTS_REFRESH_DAYS days (a full rebuild: `insights.services.summaries_refresh(since=None)`).
INSIGHTS_REFRESH_EVERY_S = env.int("INSIGHTS_REFRESH_EVERY_S", default=300)
INSIGHTS_REFRESH_DAYS = env.int("INSIGHTS_REFRESH_DAYS", default=2)
INSIGHTS_COHORT_WEEKS = env.int("INSIGHTS_COHORT_WEEKS", default=12)  # retention cohorts kept
INSIGHTS_API_CALLS_FLUSH_S = env.float("INSIGHTS_API_CALLS_FLUSH_S", default=10.0)  # API-call counters per process
INSIGHTS_CACHE_S = env.int("INSIGHTS_CACHE_S", default=60)  # chart data per range; keyed by the last refresh too
# `/metrics` answers `Authorization: Bearer <METRICS_TOKEN>` (the Prometheus scraper) and staff sessions; anyone
# only under DEBUG with no token set.
METRICS_TOKEN = secret("METRICS_TOKEN", default="")
CELERY_BEAT_SCHEDULE["insights-summaries-refresh"] = {
    "task": "insights.tasks.summaries_refresh_recent",
    "schedule": timedelta(seconds=INSIGHTS_REFRESH_EVERY_S),
    "options": {"expires": INSIGHTS_REFRESH_EVERY_S},  # a refresh missed while workers are down is not worth queuing
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Security: strict by default outside DEBUG (this is what `check --deploy` verifies).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
