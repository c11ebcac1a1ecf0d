"""File layout of an attribution index directory: names that readers without torch need too
(the Django app copies index files to and from storage in web processes)."""

FORMAT_VERSION = 2  # 2: credit groups, duplicate clusters, measured null and row values (credit.safetensors)
MANIFEST_NAME = "manifest.json"
CONTRIBUTORS_NAME = "contributors.safetensors"
CREDIT_NAME = "credit.safetensors"
