"""Request and response bodies of the retrieval apps API (`retrieval.api_apps`).

Requests refuse fields they do not know (`StrictSerializer`, as the ModelFactory API: a typo such as `passage`
for `passages` would otherwise deploy with the default) and take prices as OPEN base units (`OpenBaseUnitsField`);
both are shared with `models_registry.serializers`, so the two APIs read a price and an unknown field alike."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from models_registry.serializers import (
    PRICE_HELP,
    DatanetVersionRefSerializer,
    FlatListField,
    OpenBaseUnitsField,
    StrictSerializer,
)

from .models import AppState
from .services.apps import MAX_VERSIONS

PASSAGES_HELP = (f"Passages retrieved per answer, 1 to {settings.RETRIEVAL_MAX_K}: a causal model reads (and cites) "
                 "them all; an extractive answer quotes the best one.")


class RetrievalAppCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=120, help_text="Becomes the app's model name (its slug), e.g. "
                                                           "“Coastal answers” → `coastal-answers`.")
    versions = FlatListField(
        child=DatanetVersionRefSerializer(), allow_empty=False, max_length=MAX_VERSIONS,
        help_text="Published versions of Documents Datanets you may read and build on, one per Datanet, each with "
                  "a ready search index. An app over a private Datanet answers only those who may read it.")
    causal_model = serializers.SlugField(max_length=100, required=False, allow_null=True, allow_blank=True,
                                         default=None, help_text="One of your deployed instruction or text model "
                                                                 "versions (its slug) writes the answers; none: "
                                                                 "extractive answers.")
    passages = serializers.IntegerField(min_value=1, max_value=settings.RETRIEVAL_MAX_K, default=4,
                                        help_text=PASSAGES_HELP)
    price_per_inference = OpenBaseUnitsField(required=False, default=0, help_text=PRICE_HELP)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["versions"].error_messages["empty"] = (
            "Choose at least one published version of a Documents Datanet.")
        self.fields["versions"].error_messages["max_length"] = (
            f"An app searches at most {MAX_VERSIONS} versions; choose fewer.")


class RetrievalAppUpdateSerializer(StrictSerializer):
    """Every field optional (PATCH); any other field is refused with the accepted ones."""

    price_per_inference = OpenBaseUnitsField(required=False, help_text=PRICE_HELP)
    passages = serializers.IntegerField(min_value=1, max_value=settings.RETRIEVAL_MAX_K, required=False,
                                        help_text=PASSAGES_HELP + " Changing it changes the app's `app_hash`.")
    deployed = serializers.BooleanField(required=False, help_text="false retires the app (it stops answering); true "
                                                                  "deploys a retired one again.")
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send at least one of price_per_inference, passages, deployed, "
                                              "description.")
        return attrs


class AppVersionSerializer(serializers.Serializer):
    datanet = serializers.CharField(source="datanet.slug", help_text="The Datanet's slug.")
    datanet_name = serializers.CharField(source="datanet.name")
    number = serializers.IntegerField()
    version_hash = serializers.CharField(source="manifest_hash")
    private = serializers.SerializerMethodField(help_text="A private Datanet: only its readers may ask the app.")

    def get_private(self, version) -> bool:
        return not version.datanet.is_public


class RetrievalAppSerializer(serializers.Serializer):
    slug = serializers.SlugField(help_text="The `model` of a chat completion on /v1/chat/completions.")
    name = serializers.CharField()
    description = serializers.CharField()
    owner = serializers.CharField(source="owner.public_name")
    state = serializers.ChoiceField(choices=AppState.choices)
    deployed = serializers.SerializerMethodField(help_text="Whether it answers now.")
    answer_mode = serializers.CharField(help_text="extractive (a quoted sentence) or generative (a causal model).")
    causal_model = serializers.SlugField(source="causal_model.slug", allow_null=True, default=None)
    passages = serializers.IntegerField(help_text="Passages retrieved per answer.")
    price_per_inference = OpenBaseUnitsField(help_text=PRICE_HELP)
    app_hash = serializers.CharField(help_text="Identity of what answers; fees and receipts name it.")
    versions = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField(help_text="This app in the API.")
    page_url = serializers.SerializerMethodField(help_text="The app's page.")

    def get_deployed(self, app) -> bool:
        return app.state == AppState.ACTIVE

    @extend_schema_field(AppVersionSerializer(many=True))
    def get_versions(self, app) -> list[dict]:
        versions = self.context.get("versions_by_app", {}).get(app.pk)
        if versions is None:
            versions = app.versions.select_related("datanet").order_by("datanet__name", "number")
        return AppVersionSerializer(versions, many=True).data

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_url(self, app) -> str:
        return self._absolute(reverse("retrieval-apps-api-detail", args=[app.slug]))

    def get_page_url(self, app) -> str:
        return self._absolute(app.get_absolute_url())


class AppListQuerySerializer(serializers.Serializer):
    mine = serializers.BooleanField(required=False, default=False,
                                    help_text="true: only your own apps (deployed or retired).")
