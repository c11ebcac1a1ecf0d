"""Issue #22, item 3: people are named by one public name everywhere, never by their e-mail address.

`GET /v1/models` showed the owner's e-mail as `owned_by`; a contributor without a display name was
"user 8" in the playground's receipt panel (the answer's `lineage.contributors`) but "newbie" on the
receipt page. The public name is `User.public_name` (display name, else username), read in bulk through
`accounts.selectors.users_public_names`.

Runs on the module's real fine-tuned model (conftest.py). Every person here has no display name, as a
newly signed-up account has none, so the name each surface shows must be the username.
"""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from inference import services as inference_services
from models_registry import services as model_services

pytestmark = pytest.mark.django_db

EMAIL_DOMAIN = "@example.org"  # every world account's e-mail address ends so


@pytest.fixture
def nameless(world, settings):
    """The world's people without display names, the model deployed for free, receipts made inline."""
    settings.INFERENCE_RECEIPTS_ASYNC = False
    get_user_model().objects.filter(username__startswith="w-").update(display_name="")
    model_services.model_version_update(version=world.model, actor=world.alice, price_per_inference=0)
    model_services.model_version_set_deployed(version=world.model, actor=world.alice, deployed=True)
    return {u.pk: u for u in get_user_model().objects.filter(username__startswith="w-")}


def test_models_list_names_the_owner_by_public_name_not_email(world, nameless, key_client):
    response = key_client(world.charlie, "infer").get("/v1/models")
    assert response.status_code == 200, response.content
    assert EMAIL_DOMAIN not in response.content.decode()
    listed = next(m for m in response.json()["data"] if m["id"] == world.model.slug)
    assert listed["owned_by"] == nameless[world.alice.pk].public_name == "w-alice"

    get_user_model().objects.filter(pk=world.alice.pk).update(display_name="Alice Andersen")
    listed = next(m for m in key_client(world.charlie, "infer").get("/v1/models").json()["data"]
                  if m["id"] == world.model.slug)
    assert listed["owned_by"] == "Alice Andersen"


def test_receipt_panel_api_and_page_name_each_contributor_the_same_way(world, nameless, key_client, client):
    # The playground and /v1 answers carry `Settled.as_dict()` as their `lineage`: the receipt panel
    # draws `lineage.contributors[].name`.
    inference = inference_services.inference_begin(user=world.charlie, api_key=None, endpoint="chat.completions",
                                                   model=world.model.slug)
    settled = inference_services.inference_complete(inference=inference,
                                                    input_text="I was charged $12 twice for my basic plan",
                                                    output="billing", tokens_in=9, tokens_out=1, slot=None)
    panel = settled.as_dict()
    assert panel["receipt_status"] == "ready" and panel["contributors"], panel
    assert EMAIL_DOMAIN not in str(panel)
    panel_names = {int(c["user_id"]): c["name"] for c in panel["contributors"]}
    assert panel_names == {pk: nameless[pk].username for pk in panel_names}
    assert not any(name.startswith("user ") for name in panel_names.values())

    receipt_api = key_client(world.charlie, "read").get(f"/api/v1/attributions/{panel['receipt_id']}/")
    assert receipt_api.status_code == 200 and EMAIL_DOMAIN not in receipt_api.content.decode()
    # The API names everyone the receipt mentions (shares, scores, rows): the paid ones as the panel does.
    api_names = {int(pk): name for pk, name in receipt_api.json()["contributor_names"].items()}
    assert api_names.items() >= panel_names.items()
    assert api_names == {pk: nameless[pk].username for pk in api_names}

    page = client.get(reverse("attribution:receipt", args=[panel["receipt_id"]])).content.decode()
    assert EMAIL_DOMAIN not in page
    for pk, name in panel_names.items():
        assert f'data-contributor="{pk}"><span class="bar-label">{name}</span>' in page
