"""Notifications and webhooks: who a webhook may post to, its timeouts and retries, and the key that encrypts
webhook signing secrets at rest."""

from notifications.secret_box import key_from_secret_key  # standard library only

from .environment import DEBUG, SECRET_KEY, env, secret

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
