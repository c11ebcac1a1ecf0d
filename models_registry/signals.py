from django.dispatch import Signal

# Sent on commit when a fine-tune registers a model version (kwargs: version). The attribution app
# listens to queue the version's index build, so ModelFactory does not import attribution.
model_version_registered = Signal()
