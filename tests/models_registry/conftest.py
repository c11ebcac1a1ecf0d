import pytest

from datanets import services as datanet_services

BILLING = ["I was charged twice", "refund my payment", "my invoice is wrong", "the card payment failed",
           "why was I billed again", "cancel the charge on my card"]
SHIPPING = ["where is my parcel", "the courier lost my package", "delivery is late", "tracking number does not work",
            "parcel arrived damaged", "change my delivery address"]


def make_intent_rows(repeat=4):
    rows = [{"text": f"{t} please help {i}", "label": "billing"} for i, t in enumerate(BILLING * repeat)]
    rows += [{"text": f"{t} please help {i}", "label": "shipping"} for i, t in enumerate(SHIPPING * repeat)]
    return rows


@pytest.fixture
def intent_rows():
    """Two clearly separable support intents, `repeat` × 12 rows."""
    return make_intent_rows


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """Create a Datanet, contribute rows through the real validation path, accept and publish them."""

    def make(owner, rows, *, task_type="text-classification", labels=("billing", "shipping"), name="Intents",
             visibility="public", contributor=None):
        datanet = datanet_services.datanet_create(
            owner=owner, name=name, task_type=task_type, visibility=visibility,
            label_set=list(labels) if task_type == "text-classification" else [],
        )
        with django_capture_on_commit_callbacks(execute=True):
            datanet_services.contribution_create_from_rows(datanet=datanet, contributor=contributor or owner, rows=rows)
        datanet_services.records_review(datanet=datanet, reviewer=owner,
                                        record_ids=datanet.records.values_list("pk", flat=True), decision="accept")
        return datanet_services.version_publish(datanet=datanet, actor=owner)

    return make
