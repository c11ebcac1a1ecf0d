"""Retrieval over published Datanet versions: passage embeddings, an approximate nearest-neighbour
index per version, optional BM25 fused with the dense scores. The engine (``retrieval/engine/``) is plain
Python; the Django app around it builds one index per published version of a Documents Datanet (gpu queue),
stores its files, and searches it (``/api/v1/datanets/<slug>/versions/<n>/search/``, the version page)."""
