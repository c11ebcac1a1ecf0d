"""Where data lives: the database (SQLite under `VAR_DIR` by default, PostgreSQL when `DATABASE_URL` is set), the
cache, and files (local media and static files, an S3-compatible bucket when `AWS_STORAGE_BUCKET_NAME` is set)."""

import os
from pathlib import Path

from .environment import BASE_DIR, DEBUG, VAR_DIR, env, secret

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
