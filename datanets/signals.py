from django.dispatch import Signal

# Sent inside the transaction that publishes a Datanet version (kwargs: version), so what a listener writes
# commits with the version or not at all. The retrieval app listens to queue a Documents Datanet version's
# search index, so datanets does not import retrieval.
version_published = Signal()
