"""Lineage settings: everything comes from the environment, with embedded defaults that run on one
machine with no other server (SQLite, a filesystem Celery broker, local media, an in-process chain).

Set `DATABASE_URL`, `CELERY_BROKER_URL`, `CACHE_URL`, `AWS_STORAGE_BUCKET_NAME` and `CHAIN_RPC_URL`
to scale out. `DEBUG=0` switches on the production security settings that `check --deploy` wants.

This module is the entry (`DJANGO_SETTINGS_MODULE=lineage.settings`): it holds Django's own wiring (apps,
middleware, templates, language, logging) and takes every other setting from the topical modules of
`lineage/settings_parts/`, each of which imports what it builds on from the ones before it:

* `environment.py`: `env`, `secret()` (a value or the file `<NAME>_FILE` names), `VAR_DIR`, `DEBUG`, `SECRET_KEY`
* `storage.py`: the database, the cache, media and static files
* `auth.py`: login (allauth), passwords, e-mail, and the security settings
* `api.py`: the REST framework and the OpenAPI schema
* `queues.py`: Celery, its queues and routes, the beat schedule the parts below add to
* `datanets.py`: upload and training limits
* `rewards.py`: the chain, wallets, epochs, fee settlement, governance
* `notifications.py`: webhooks, and the key their secrets are encrypted with
* `attribution.py`: the attribution index and share policy; documents and retrieval
* `inference.py`: the model servers and serving limits; insights and `/metrics`
"""

# ruff: noqa: E402, F403 -- the parts are imported below the loop that forgets them, and with all their names.

import sys

# Every run of this file reads the environment afresh, its parts included: forget the parts an earlier run
# imported. Django imports this module once per process; a test that runs the file again under other
# variables (runpy, tests/notifications/test_secret_encryption.py) must get those variables' values.
for _part in [name for name in sys.modules if name.startswith("lineage.settings_parts.")]:
    del sys.modules[_part]

# isort: off
# In this order: the parts' additions to CELERY_TASK_ROUTES and CELERY_BEAT_SCHEDULE keep the order they had.
from lineage.settings_parts.environment import *
from lineage.settings_parts.storage import *
from lineage.settings_parts.auth import *
from lineage.settings_parts.api import *
from lineage.settings_parts.queues import *
from lineage.settings_parts.datanets import *
from lineage.settings_parts.rewards import *
from lineage.settings_parts.notifications import *
from lineage.settings_parts.attribution import *
from lineage.settings_parts.inference import *
# isort: on
from lineage.settings_parts.environment import BASE_DIR, env

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
    "lineage.middleware.NulCharacterGuardMiddleware",  # before any view reads a query parameter
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
