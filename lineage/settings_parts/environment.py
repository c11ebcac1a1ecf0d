"""How every setting is read: `env` (django-environ, after a `.env` file at the repository root when present),
`secret()` for values that may come from a file, and the settings all the others build on: where Lineage keeps
its files (`VAR_DIR`), `DEBUG`, `SECRET_KEY`, the hosts served and the site's own URL."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]  # the repository root

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
