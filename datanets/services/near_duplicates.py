"""Each Datanet's MinHash index of its stored rows, which upload validation screens new rows against:
cached on local disk and caught up from the database."""

from pathlib import Path

from django.conf import settings

from datanets.ingest.neardup import NearDupIndex

from ..models import Datanet, Record
from .constants import DB_BATCH


def _near_dup_cache_path(datanet: Datanet) -> Path:
    return Path(settings.DATANETS_CACHE_DIR) / f"neardup-{datanet.pk}.npz"


def near_dup_index_load(*, datanet: Datanet) -> NearDupIndex:
    """The Datanet's MinHash index of every stored row, cached on local disk and caught up from the
    database (rows with ids past the cached high-water mark), so a lost or stale cache file only costs
    a rebuild, never a missed duplicate."""
    path = _near_dup_cache_path(datanet)
    index, high_water = None, 0
    if path.exists():
        try:
            index = NearDupIndex.load(path)
            high_water = int(path.with_suffix(".hwm").read_text())
        except (OSError, ValueError):
            index, high_water = None, 0
    # The cache must hold exactly the rows up to its high-water mark. It does not when another upload
    # committed rows below the mark that this cache never saw (two validations of one Datanet at once),
    # or after rows were deleted or the database restored: then it is rebuilt.
    if index is not None and len(index) != Record.objects.filter(datanet=datanet, pk__lte=high_water).count():
        index, high_water = None, 0
    # A threshold of 1.0 (exact copies only) is searched at 0.99: LSH needs a threshold below one.
    wanted = (min(datanet.near_dup_threshold, 0.99), settings.DATANETS_NEAR_DUP_NUM_PERM,
              settings.DATANETS_NEAR_DUP_SHINGLE_SIZE)
    if index is None or (index.threshold, index.num_perm, index.shingle_size) != wanted:
        threshold, num_perm, shingle_size = wanted
        index = NearDupIndex(threshold=threshold, num_perm=num_perm, shingle_size=shingle_size)
        high_water = 0
    schema = datanet.schema
    missing = Record.objects.filter(datanet=datanet, pk__gt=high_water).values_list("pk", "fields").order_by("pk")
    index.add_many((pk, schema.comparison_text(fields)) for pk, fields in missing.iterator(chunk_size=DB_BATCH) if pk not in index)
    return index


def near_dup_index_save(*, datanet: Datanet, index: NearDupIndex) -> None:
    path = _near_dup_cache_path(datanet)
    path.parent.mkdir(parents=True, exist_ok=True)
    high_water = max((pk for pk in index.row_ids if isinstance(pk, int)), default=0)
    # `save` writes a temporary file of its own and renames it into place: a reader never sees half a file, and
    # two validations saving at once never share (and lose) one temporary name.
    index.save(path)
    path.with_suffix(".hwm").write_text(str(high_water))
