"""Response shapes of the insights API, for the OpenAPI schema (the views return the selectors' dicts)."""

from rest_framework import serializers


class WindowSerializer(serializers.Serializer):
    range = serializers.CharField(help_text="The range asked for, e.g. `90d`, `12w` or `all`.")
    bucket = serializers.ChoiceField(choices=["day", "week"])
    start = serializers.DateField(help_text="First day shown (a Monday for weekly buckets), UTC.")
    end = serializers.DateField(help_text="Last day shown (today), UTC.")


class SeriesSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    values = serializers.ListField(child=serializers.FloatField(allow_null=True),
                                   help_text="One value per label; null where there is no value (e.g. a rate "
                                             "with nothing to divide).")
    total = serializers.FloatField(allow_null=True)
    total_kind = serializers.ChoiceField(choices=["total", "latest", "average", "overall"],
                                         help_text="How `total` sums up the window.")


class ChartSerializer(serializers.Serializer):
    id = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    unit = serializers.CharField(help_text="rows, people, requests, OPEN, ms, % ...")
    kind = serializers.ChoiceField(choices=["line", "bar"])
    stacked = serializers.BooleanField()
    section = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField(), help_text="Bucket start days (ISO dates).")
    series = SeriesSerializer(many=True)
    synthetic = serializers.ListField(child=serializers.BooleanField(),
                                      help_text="Per bucket: true when it includes generated (synthetic) history.")
    empty = serializers.BooleanField(help_text="No data yet in this window.")
    any_synthetic = serializers.BooleanField()
    summary = serializers.CharField(help_text="The chart in one sentence (its text alternative).")


class ScopeSerializer(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.CharField(allow_blank=True)


class DashboardSerializer(serializers.Serializer):
    window = WindowSerializer()
    scope = ScopeSerializer()
    has_data = serializers.BooleanField()
    synthetic = serializers.BooleanField(help_text="Some points come from generated history.")
    refreshed_at = serializers.DateTimeField(allow_null=True, help_text="When the summaries were last recomputed.")
    charts = ChartSerializer(many=True)


class RankedScopeSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    total = serializers.FloatField()
    url = serializers.CharField()


class OverviewSerializer(DashboardSerializer):
    datanets = RankedScopeSerializer(many=True, help_text="Datanets you can see, by rows submitted in the window.")
    models = RankedScopeSerializer(many=True, help_text="Deployed models, by requests in the window.")


class DatanetDashboardSerializer(DashboardSerializer):
    datanet = serializers.DictField()


class ModelDashboardSerializer(DashboardSerializer):
    model = serializers.DictField()


class CohortSerializer(serializers.Serializer):
    cohort_week = serializers.DateField()
    size = serializers.IntegerField()
    shares = serializers.ListField(child=serializers.FloatField(allow_null=True),
                                   help_text="Percent of the cohort active n weeks later (index n).")
    synthetic = serializers.BooleanField()


class RetentionSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["contributors", "api_users"])
    label = serializers.CharField()
    weeks = serializers.ListField(child=serializers.IntegerField())
    cohorts = CohortSerializer(many=True)
    curve = serializers.ListField(child=serializers.FloatField(allow_null=True),
                                  help_text="Size-weighted share active n weeks later, over the cohorts shown.")
    empty = serializers.BooleanField()
    synthetic = serializers.BooleanField()


class RetentionBothSerializer(serializers.Serializer):
    contributors = RetentionSerializer()
    api_users = RetentionSerializer()


class EpochSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    label = serializers.CharField(help_text="`#n` for a real epoch, `Sn` for a synthetic one.")
    state = serializers.CharField()
    frozen_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    accrued = serializers.FloatField(help_text="OPEN frozen into the epoch.")
    funded = serializers.FloatField(help_text="OPEN sent to the distributor.")
    claimed = serializers.FloatField(help_text="OPEN claimed on chain until the next epoch froze.")
    recipients = serializers.IntegerField()
    synthetic = serializers.BooleanField()


class EpochListSerializer(serializers.Serializer):
    results = EpochSerializer(many=True)


class EarnerSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    user_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    earned = serializers.FloatField(help_text="OPEN earned as a contributor in the window.")
    synthetic = serializers.BooleanField()


class TopEarnersSerializer(serializers.Serializer):
    window = WindowSerializer()
    results = EarnerSerializer(many=True)
