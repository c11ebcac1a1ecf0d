"""Celery: the broker and result backend (a filesystem broker under `VAR_DIR` by default), the four queues and the
routes to them, and the beat schedule that each app's part adds its entries to."""

from datetime import timedelta

from kombu import Exchange, Queue

from .environment import VAR_DIR, env, secret

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
