"""Proof of Attribution (the index every receipt is scored against, and the share policy that pays from it), and
documents and retrieval (passages, the retrieval index, search limits)."""

from pathlib import Path

from .datanets import MB
from .environment import VAR_DIR, env
from .queues import CELERY_TASK_ROUTES

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
# influence 0.941; 0.898 refined, below); the random tenth keeps rows that differ in one word apart.
ATTRIBUTION_PROJECTION = env.str("ATTRIBUTION_PROJECTION", default="eigenbasis")
ATTRIBUTION_EIGENBASIS_ROWS = env.int("ATTRIBUTION_EIGENBASIS_ROWS", default=4096)
ATTRIBUTION_EIGENBASIS_FRACTION = env.float("ATTRIBUTION_EIGENBASIS_FRACTION", default=0.9)
# The eigen part is refined: the fit rows' leading principal directions among ATTRIBUTION_EIGENBASIS_CANDIDATES
# times as many Kronecker pairs (1: the pairs themselves). docs/attribution-quality.md has the measurements.
ATTRIBUTION_EIGENBASIS_CANDIDATES = env.float("ATTRIBUTION_EIGENBASIS_CANDIDATES", default=4.0)
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
