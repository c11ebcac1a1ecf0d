"""Serializers for the ModelFactory REST API: the shape of requests and of answers.

A fine-tune request's settings are the browser form's (`FineTuneForm`): each field below is built from the
form field of the same name (bounds, default, help text), and the view hands the request to that form, so
the page and the API accept exactly the same specs. The rules themselves (who may train on what, which
Datanet versions go together, what the engine accepts) stay in the form and `services.fine_tune_create`.

Amounts are OPEN base units (1 OPEN = 10**18, `rewards.amounts`) sent as strings of digits, as the rewards
API sends them: a JSON number loses precision past 2**53.
"""

from collections.abc import Mapping

from django import forms
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from rewards.amounts import BASE_UNITS, UINT256_MAX, AmountError, format_open, parse_open

from .forms import FineTuneForm
from .models import AttributionStatus, JobState

# --- Requests ----------------------------------------------------------------------------------------


def _from_form(name: str) -> serializers.Field:
    """The API field for the form field `name`: same type, bounds and help text. A field the form
    requires but pre-fills (`initial`) is optional here with that default; an optional one (empty means
    "scaled to the data") takes null."""
    field = FineTuneForm.base_fields[name]
    # On the page an empty box means "scaled to the data"; here that is a field left out, or null.
    options = {"help_text": str(field.help_text or field.label or "").replace("Empty:", "Left out or null:")}
    if field.required and field.initial is None:
        options["required"] = True
    elif field.required:
        options.update(required=False, default=field.initial)
    else:
        options.update(required=False, allow_null=True, default=None)
    if isinstance(field, forms.FloatField):  # before IntegerField: Django's FloatField subclasses it
        return serializers.FloatField(min_value=field.min_value, max_value=field.max_value, **options)
    if isinstance(field, forms.IntegerField):
        return serializers.IntegerField(min_value=field.min_value, max_value=field.max_value, **options)
    return serializers.CharField(max_length=field.max_length, **options)


def _sentences(detail, prefix=""):
    """Error details, nested or not, as plain sentences ("number: This field is required.")."""
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _sentences(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [m for value in detail for m in _sentences(value, prefix)]
    return [f"{prefix}{detail}"]


class FlatListField(serializers.ListField):
    """A list whose item errors come back as sentences ("Item 2: number: ...") in the error shape's `fields`,
    rather than nested by index."""

    def run_child_validation(self, data):
        try:
            return super().run_child_validation(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(
                [m for index, errors in exc.detail.items() for m in _sentences(errors, f"Item {index + 1}: ")]
            ) from exc


class StrictSerializer(serializers.Serializer):
    """A request serializer that refuses fields it does not know (DRF drops them silently, so a typo such as
    `epoch` for `epochs` would launch with the default). Each unknown field gets its own message in
    `fields`, and `detail` names them all with the accepted ones; other field errors come back with them."""

    def to_internal_value(self, data):
        unknown = sorted(str(key) for key in data if key not in self.fields) if isinstance(data, Mapping) else []
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not unknown or not isinstance(exc.detail, dict):
                raise
            raise serializers.ValidationError({**self._unknown_errors(unknown, more=True), **exc.detail}) from exc
        if unknown:
            raise serializers.ValidationError(self._unknown_errors(unknown))
        return value

    def _unknown_errors(self, unknown: list[str], *, more: bool = False) -> dict:
        accepted = ", ".join(self.fields)
        errors = {name: [f"Unknown field. Accepted: {accepted}."] for name in unknown}
        if self.parent is None:  # the request's own fields: `detail` says it too, for clients that show only that
            several = len(unknown) > 1
            errors[api_settings.NON_FIELD_ERRORS_KEY] = [
                f"Unknown field{'s' if several else ''}: {', '.join(unknown)}. Remove {'them' if several else 'it'}; "
                f"the accepted fields are: {accepted}." + (" Other fields are not valid either: see `fields`."
                                                             if more else "")]
        return errors


class DatanetVersionRefSerializer(StrictSerializer):
    datanet = serializers.SlugField(max_length=80, help_text="The Datanet's slug.")
    number = serializers.IntegerField(min_value=1, help_text="A published version's number.")


def _module_name(value: str) -> str:
    if "," in value:
        raise serializers.ValidationError("Name one module per list item (no commas).")
    return value


class FineTuneCreateSerializer(StrictSerializer):
    name = _from_form("name")
    base_model = serializers.SlugField(max_length=80, help_text="A base model's slug (`GET /api/v1/base-models/`).")
    datanet_versions = FlatListField(
        child=DatanetVersionRefSerializer(), allow_empty=False, max_length=50,
        help_text="Published versions you may train on; they must share a task and labels, and one Datanet "
                  "may be named once (a later version holds the earlier one's rows).",
    )
    lora_r = _from_form("lora_r")
    lora_alpha = _from_form("lora_alpha")
    lora_dropout = _from_form("lora_dropout")
    lora_target_modules = FlatListField(
        child=serializers.CharField(max_length=100, validators=[_module_name]), required=False, default=list,
        max_length=64, help_text=str(FineTuneForm.base_fields["lora_target_modules"].help_text).replace(
            "Comma-separated layer names", "Layer names"),
    )
    learning_rate = _from_form("learning_rate")
    epochs = _from_form("epochs")
    batch_size = _from_form("batch_size")
    max_seq_length = _from_form("max_seq_length")
    eval_fraction = _from_form("eval_fraction")
    seed = _from_form("seed")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["datanet_versions"].error_messages["empty"] = "Choose at least one Datanet version to train on."


JOB_STATES = ", ".join(JobState.values)


class JobListQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=JobState.choices, required=False,
                                    error_messages={"invalid_choice": f"Use one of: {JOB_STATES}."})


class ModelListQuerySerializer(serializers.Serializer):
    mine = serializers.BooleanField(required=False, default=False,
                                    help_text="true: only your own models (deployed or not).")


@extend_schema_field({
    "oneOf": [{"type": "string", "pattern": "^[0-9]+$", "maxLength": 78}, {"type": "integer", "minimum": 0}],
    "description": "OPEN base units (1 OPEN = 10**18): \"50000000000000000\" is 0.05 OPEN. A string of digits "
                   "(or a JSON integer); 0 is free.",
})
class OpenBaseUnitsField(serializers.Field):
    """An amount of OPEN in base units: a string of digits or a JSON integer, never a decimal."""

    def to_internal_value(self, data):
        if isinstance(data, int) and not isinstance(data, bool):
            value = data
        elif isinstance(data, str) and data.strip().isascii() and data.strip().isdigit():
            value = int(data.strip())
        else:
            raise serializers.ValidationError(self._why_not(data))
        if value < 0:
            raise serializers.ValidationError("The price cannot be negative.")
        if value > UINT256_MAX:
            raise serializers.ValidationError("The price is larger than any OPEN amount (2**256 - 1 base units).")
        return value

    def to_representation(self, value):
        return str(int(value))

    @staticmethod
    def _why_not(data) -> str:
        shown = str(data).strip()[:40]
        if not isinstance(data, str):
            return (f"Send the price as a string of OPEN base units (1 OPEN = 10**18), e.g. \"{BASE_UNITS // 20}\" "
                    "for 0.05 OPEN.")
        if shown.startswith("-"):
            return "The price cannot be negative."
        try:
            suggestion = parse_open(shown)
        except AmountError:
            return (f"“{shown}” is not an amount: send OPEN base units (1 OPEN = 10**18) as a string of digits, "
                    f"e.g. \"{BASE_UNITS // 20}\" for 0.05 OPEN.")
        return (f"Prices are whole OPEN base units (1 OPEN = 10**18), not OPEN: {shown} OPEN is "
                f"\"{suggestion}\".")


PRICE_HELP = ("Price per answer in OPEN base units (1 OPEN = 10**18), as a string of digits: \"50000000000000000\" "
              "is 0.05 OPEN; 0 is free.")


class ModelVersionUpdateSerializer(StrictSerializer):
    """Every field optional (PATCH); any other field is refused with the accepted ones."""

    price_per_inference = OpenBaseUnitsField(required=False, help_text=PRICE_HELP)
    allow_download = serializers.BooleanField(required=False, help_text="Let anyone download the adapter.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send at least one of price_per_inference, allow_download, description.")
        return attrs


# --- Answers -----------------------------------------------------------------------------------------


def _absolute(serializer, path: str) -> str:
    request = serializer.context.get("request")
    return request.build_absolute_uri(path) if request else path


class BaseModelSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    architecture = serializers.CharField()
    task_types = serializers.ListField(child=serializers.CharField())
    licence = serializers.CharField()
    parameters = serializers.IntegerField()
    description = serializers.CharField()


class JobDatanetVersionSerializer(serializers.Serializer):
    datanet = serializers.CharField(source="datanet.slug")
    number = serializers.IntegerField()
    manifest_hash = serializers.CharField()
    row_count = serializers.IntegerField()


class FineTuneJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=JobState.choices)
    base_model = serializers.CharField(source="base_model.slug")
    task = serializers.CharField()
    datanet_versions = serializers.SerializerMethodField()
    label_names = serializers.ListField(child=serializers.CharField())
    hyperparameters = serializers.JSONField(help_text="The settings the job trains with, defaults resolved.")
    progress_percent = serializers.IntegerField()
    step = serializers.IntegerField(help_text="Training steps done (1-based once training has started).")
    total_steps = serializers.IntegerField()
    epoch = serializers.IntegerField(help_text="The epoch of the step just finished (1-based).")
    total_epochs = serializers.IntegerField(allow_null=True)
    eta_s = serializers.FloatField(allow_null=True, help_text="Seconds of training left, estimated.")
    examples_per_s = serializers.FloatField(allow_null=True)
    loss_curve = serializers.SerializerMethodField()
    error = serializers.CharField(help_text="Why the job failed; empty otherwise.")
    log = serializers.SerializerMethodField()
    cancel_requested = serializers.BooleanField()
    resumable = serializers.SerializerMethodField()
    resumed_from_step = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    model_version = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(JobDatanetVersionSerializer(many=True))
    def get_datanet_versions(self, job):
        versions = job.datanet_versions.select_related("datanet").order_by("pk")
        return JobDatanetVersionSerializer(versions, many=True).data

    @extend_schema_field(serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[step, training loss] pairs, one per step, in step order."))
    def get_loss_curve(self, job):
        # A resumed run reports again from its checkpoint's step: the latest report of a step wins.
        return [[step, loss] for step, loss in sorted(dict((s, v) for s, v in job.loss_curve).items())]

    def get_log(self, job) -> list[str]:
        return job.log_tail.splitlines()

    def get_resumable(self, job) -> bool:
        from .services import RESUMABLE_STATES

        return job.state in RESUMABLE_STATES

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="The model version's slug, once registered."))
    def get_model_version(self, job):
        version = getattr(job, "model_version", None) if job.state == JobState.SUCCEEDED else None
        return version.slug if version else None

    def get_url(self, job) -> str:
        return _absolute(self, reverse("fine-tunes-api-detail", args=[job.pk]))


class OwnerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField(source="public_name")


class ModelVersionSerializer(serializers.Serializer):
    slug = serializers.SlugField(help_text="The `model` name in inference calls.")
    name = serializers.CharField()
    version_hash = serializers.CharField(help_text="The training manifest's hash: this version's identity.")
    base_model = serializers.CharField(source="base_model.slug")
    task = serializers.CharField()
    label_names = serializers.ListField(child=serializers.CharField())
    owner = OwnerSerializer()
    deployed = serializers.BooleanField()
    allow_download = serializers.BooleanField()
    price_per_inference = serializers.SerializerMethodField()
    price_open = serializers.SerializerMethodField()
    attribution_status = serializers.ChoiceField(choices=AttributionStatus.choices)
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    @extend_schema_field({"type": "string", "pattern": "^[0-9]+$", "description": PRICE_HELP})
    def get_price_per_inference(self, version):
        return str(int(version.price_per_inference))

    def get_price_open(self, version) -> str:
        """The same price in OPEN (not base units), for people: '0.05'."""
        return format_open(int(version.price_per_inference), grouping=False)

    def get_url(self, version) -> str:
        return _absolute(self, reverse("models-api-detail", args=[version.slug]))


class CardMetricSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    finetuned = serializers.CharField(help_text="The fine-tuned model's figure, as the card shows it.")
    base = serializers.CharField(help_text="The base model's figure, or 'not measured'.")


class CardSerializer(serializers.Serializer):
    trained_rows = serializers.IntegerField()
    held_out_rows = serializers.IntegerField()
    trained_contributors = serializers.IntegerField()
    metrics = CardMetricSerializer(many=True)
    baseline_rate = serializers.CharField(help_text="Majority-class rate of the held-out rows (classifiers).")
    warning = serializers.JSONField(allow_null=True, help_text="{problems, advice} when the model shows signs of "
                                                               "not having learned; null otherwise.")


class LineageDatanetSerializer(serializers.Serializer):
    visible = serializers.BooleanField(help_text="false: a private Datanet you may not see (no name or slug).")
    datanet = serializers.CharField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    version_hash = serializers.CharField(help_text="The Datanet version's manifest hash: it pins the exact rows.")
    licence = serializers.CharField()
    rows = serializers.IntegerField()
    contributors = serializers.IntegerField()


class LineageSerializer(serializers.Serializer):
    datanets = LineageDatanetSerializer(many=True)
    rows = serializers.IntegerField()
    contributors = serializers.IntegerField()


class ModelVersionDetailSerializer(ModelVersionSerializer):
    description = serializers.CharField()
    metrics = serializers.JSONField()
    base_metrics = serializers.JSONField()
    card = serializers.SerializerMethodField()
    lineage = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()
    adapter_url = serializers.SerializerMethodField()

    @extend_schema_field(CardSerializer)
    def get_card(self, version):
        from .selectors import model_version_card

        return CardSerializer(model_version_card(version=version)).data

    @extend_schema_field(LineageSerializer)
    def get_lineage(self, version):
        from .selectors import model_version_lineage_for

        request = self.context.get("request")
        return LineageSerializer(model_version_lineage_for(version=version, user=getattr(request, "user", None))).data

    @extend_schema_field(serializers.URLField(allow_null=True, help_text="The fine-tune job (its owner only)."))
    def get_job(self, version):
        request = self.context.get("request")
        if request is None or version.owner_id != getattr(request.user, "pk", None):
            return None
        return _absolute(self, reverse("fine-tunes-api-detail", args=[version.job_id]))

    def get_adapter_url(self, version) -> str:
        return _absolute(self, reverse("models-api-adapter", args=[version.slug]))
