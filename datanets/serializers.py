"""Serializers for the Datanets REST API: input validation for requests and the shape of responses.

Input serializers only check the shape of a request; the rules (who may do what, which schemas are
valid, what counts as a duplicate) live in `datanets.services`, which the views call.
"""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import (
    AccessState,
    ContributionPolicy,
    ContributionState,
    Licence,
    RecordStatus,
    Role,
    TaskType,
    TrainingAccess,
    Visibility,
)

# --- Datanets ----------------------------------------------------------------------------------------


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.SerializerMethodField()

    def get_name(self, user) -> str:
        return user.public_name


class DatanetSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    summary = serializers.CharField()
    description = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    licence = serializers.ChoiceField(choices=Licence.choices)
    visibility = serializers.ChoiceField(choices=Visibility.choices)
    contribution_policy = serializers.ChoiceField(choices=ContributionPolicy.choices)
    training_access = serializers.ChoiceField(choices=TrainingAccess.choices)
    task_type = serializers.ChoiceField(choices=TaskType.choices)
    label_set = serializers.ListField(child=serializers.CharField())
    metadata_columns = serializers.ListField(child=serializers.CharField())
    max_field_length = serializers.IntegerField()
    max_rows_per_contribution = serializers.IntegerField()
    near_dup_threshold = serializers.FloatField()
    owner = UserRefSerializer()
    accepted_rows = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_accepted_rows(self, datanet) -> int:
        # Lists annotate the count (`selectors.with_accepted_rows`); a single Datanet is counted here.
        accepted = getattr(datanet, "accepted", None)
        if accepted is None:
            from .selectors import datanet_accepted_rows

            accepted = datanet_accepted_rows(datanet=datanet)
        return accepted

    def get_url(self, datanet) -> str:
        path = reverse("datanets-api-detail", args=[datanet.slug])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class DatanetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    slug = serializers.SlugField(max_length=80, required=False, allow_blank=True)
    task_type = serializers.ChoiceField(choices=TaskType.choices)
    label_set = serializers.ListField(child=serializers.CharField(max_length=120), required=False, default=list)
    metadata_columns = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    summary = serializers.CharField(max_length=280, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    licence = serializers.ChoiceField(choices=Licence.choices, required=False, default=Licence.CC_BY_4)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False, default=Visibility.PUBLIC)
    contribution_policy = serializers.ChoiceField(
        choices=ContributionPolicy.choices, required=False, default=ContributionPolicy.ANYONE
    )
    training_access = serializers.ChoiceField(choices=TrainingAccess.choices, required=False, default=TrainingAccess.OPEN)
    max_field_length = serializers.IntegerField(min_value=1, max_value=100_000, required=False, default=10_000)
    max_rows_per_contribution = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, default=100_000)
    near_dup_threshold = serializers.FloatField(min_value=0.3, max_value=1.0, required=False, default=0.8)


class DatanetUpdateSerializer(serializers.Serializer):
    """Every field optional (PATCH); the task type is fixed once a Datanet exists."""

    name = serializers.CharField(max_length=120, required=False)
    summary = serializers.CharField(max_length=280, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    licence = serializers.ChoiceField(choices=Licence.choices, required=False)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    contribution_policy = serializers.ChoiceField(choices=ContributionPolicy.choices, required=False)
    training_access = serializers.ChoiceField(choices=TrainingAccess.choices, required=False)
    near_dup_threshold = serializers.FloatField(min_value=0.3, max_value=1.0, required=False)
    label_set = serializers.ListField(child=serializers.CharField(max_length=120), required=False)
    metadata_columns = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    max_field_length = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    max_rows_per_contribution = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({name: "This setting cannot be changed." for name in sorted(unknown)})
        if not attrs:
            raise serializers.ValidationError("Send at least one setting to change.")
        return attrs


class LabelCountSerializer(serializers.Serializer):
    label = serializers.CharField()
    n = serializers.IntegerField()


class DatanetStatsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    total = serializers.IntegerField()
    duplicates_caught = serializers.IntegerField()
    near_duplicates_flagged = serializers.IntegerField()
    contributors = serializers.IntegerField()
    label_distribution = LabelCountSerializer(many=True)
    label_max = serializers.IntegerField()


class LeaderboardEntrySerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    submitted = serializers.IntegerField()
    accepted = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True)


# --- Members -----------------------------------------------------------------------------------------


class MemberSerializer(serializers.Serializer):
    user = UserRefSerializer()
    role = serializers.ChoiceField(choices=Role.choices)
    created_at = serializers.DateTimeField()


class MemberSetSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(required=False)
    username = serializers.CharField(required=False)
    role = serializers.ChoiceField(choices=[Role.CURATOR, Role.CONTRIBUTOR])

    def validate(self, attrs):
        if not attrs.get("user_id") and not attrs.get("username"):
            raise serializers.ValidationError({"user_id": "Name the member by user_id or username."})
        return attrs


# --- Contributions -----------------------------------------------------------------------------------


class ContributionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    datanet = serializers.CharField(source="datanet.slug")
    contributor = UserRefSerializer()
    source = serializers.CharField()
    file_name = serializers.CharField()
    file_sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    state = serializers.ChoiceField(choices=ContributionState.choices)
    progress_percent = serializers.IntegerField()
    counts = serializers.SerializerMethodField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    notes = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    validated_at = serializers.DateTimeField(allow_null=True)
    reviewed_at = serializers.DateTimeField(allow_null=True)
    status_url = serializers.SerializerMethodField()
    errors_url = serializers.SerializerMethodField()

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                name: {"type": "integer"}
                for name in ("total", "accepted", "rejected", "duplicate", "near_duplicate")
            },
        }
    )
    def get_counts(self, contribution) -> dict:
        return {
            "total": contribution.rows_total,
            "accepted": contribution.rows_accepted,
            "rejected": contribution.rows_rejected,
            "duplicate": contribution.rows_duplicate,
            "near_duplicate": contribution.rows_near_duplicate,
        }

    def _absolute(self, path):
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_status_url(self, contribution) -> str:
        return self._absolute(reverse("datanets-api-contribution", args=[contribution.datanet.slug, contribution.pk]))

    def get_errors_url(self, contribution) -> str:
        return self._absolute(
            reverse("datanets-api-contribution-errors", args=[contribution.datanet.slug, contribution.pk])
        )


class ContributionRowsSerializer(serializers.Serializer):
    """Either `rows` (JSON body) or `file` (multipart), not both."""

    rows = serializers.ListField(child=serializers.JSONField(), required=False, allow_empty=True)
    file = serializers.FileField(required=False, allow_empty_file=True)

    def validate(self, attrs):
        has_rows, has_file = "rows" in attrs, "file" in attrs
        if has_rows == has_file:
            raise serializers.ValidationError(
                "Send either a file (multipart field `file`) or JSON `{\"rows\": [...]}`, not both and not neither."
            )
        return attrs


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(source="row_number", allow_null=True)
    line = serializers.IntegerField(source="line_number", allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()
    duplicate_of = serializers.IntegerField(source="duplicate_of_id", allow_null=True)


# --- Records and review ------------------------------------------------------------------------------


class RecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    row_uid = serializers.CharField()
    contribution = serializers.IntegerField(source="contribution_id")
    contributor = UserRefSerializer()
    row_number = serializers.IntegerField()
    line_number = serializers.IntegerField(allow_null=True)
    fields = serializers.DictField(child=serializers.CharField(allow_null=True))
    label = serializers.CharField()
    status = serializers.ChoiceField(choices=RecordStatus.choices)
    reason = serializers.CharField()
    near_duplicate_of = serializers.IntegerField(source="near_duplicate_of_id", allow_null=True)
    near_duplicate_score = serializers.FloatField(allow_null=True)
    quality = serializers.DictField()
    created_at = serializers.DateTimeField()


class ReviewFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RecordStatus.choices, required=False, default=RecordStatus.PENDING)
    flag = serializers.ChoiceField(choices=["", "near_duplicate", "mislabeled", "label_conflict"], required=False,
                                   default="")
    contributor = serializers.CharField(required=False, allow_blank=True, default="")
    label = serializers.CharField(required=False, allow_blank=True, default="")
    q = serializers.CharField(required=False, allow_blank=True, default="")


class ReviewSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["accept", "reject"])
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    record_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=100_000)
    filter = ReviewFilterSerializer(required=False)

    def validate(self, attrs):
        if ("record_ids" in attrs) == ("filter" in attrs):
            raise serializers.ValidationError("Send either `record_ids` or `filter`, not both and not neither.")
        return attrs


class ReviewResultSerializer(serializers.Serializer):
    changed = serializers.IntegerField()


# --- Versions ----------------------------------------------------------------------------------------


class VersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    datanet = serializers.CharField(source="datanet.slug")
    manifest_hash = serializers.CharField()
    row_count = serializers.IntegerField()
    contributor_count = serializers.IntegerField()
    notes = serializers.CharField()
    created_by = UserRefSerializer()
    created_at = serializers.DateTimeField()
    verified_at = serializers.DateTimeField(allow_null=True)


class VersionDetailSerializer(VersionSerializer):
    manifest = serializers.JSONField()


class PublishSerializer(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class VerifySerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    problems = serializers.ListField(child=serializers.CharField())


class DiffQuerySerializer(serializers.Serializer):
    # `from` is a Python keyword, so the fields are declared in `get_fields`.
    def get_fields(self):
        return {
            "from": serializers.IntegerField(min_value=1),
            "to": serializers.IntegerField(min_value=1),
        }


class DownloadQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["csv", "jsonl", "parquet"], required=False, default="csv")


# --- Training access ---------------------------------------------------------------------------------


class AccessRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    datanet = serializers.CharField(source="datanet.slug")
    requester = UserRefSerializer()
    message = serializers.CharField()
    state = serializers.ChoiceField(choices=AccessState.choices)
    decided_by = UserRefSerializer(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class AccessRequestCreateSerializer(serializers.Serializer):
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class AccessDecideSerializer(serializers.Serializer):
    approve = serializers.BooleanField()

