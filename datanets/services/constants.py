"""Sizes the Datanets services share: bytes read at a time when hashing or copying a file, and rows per
bulk database query."""

HASH_CHUNK = 1024 * 1024
DB_BATCH = 2000
