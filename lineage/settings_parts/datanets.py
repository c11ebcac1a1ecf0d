"""Datanets uploads and fine-tune training: size and rate limits, near-duplicate detection, where training works;
and the platform-wide request limits (upload memory, health check, audit detail)."""

from pathlib import Path

from .environment import VAR_DIR, env
from .queues import JOB_MAX_ATTEMPTS

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
