from django import forms
from django.core.exceptions import ValidationError

from datanets import selectors as datanet_selectors
from rewards.amounts import OpenAmountField

from .models import BaseModel


class VersionChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, version):
        rows = f"{version.row_count} row{'' if version.row_count == 1 else 's'}"
        return f"{version.datanet.name} v{version.number} · {rows} · {version.datanet.get_task_type_display()}"


class FineTuneForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Names the job and the model it produces, e.g. 'support-intents'.")
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.filter(is_active=True), empty_label=None,
                                        help_text="The pretrained model the adapter is trained on top of.")
    datanet_versions = VersionChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple,
                                          help_text="Published versions you may train on; they must share a task and labels.")
    lora_r = forms.IntegerField(label="LoRA rank", min_value=1, max_value=256, initial=8,
                                help_text="Adapter size: 4-16 suits most tasks; higher learns more and costs more.")
    lora_alpha = forms.FloatField(label="LoRA alpha", min_value=0.1, initial=16, help_text="Scale of the adapter's update; usually 2 × rank.")
    lora_dropout = forms.FloatField(label="LoRA dropout", min_value=0, max_value=0.9, initial=0.1)
    lora_target_modules = forms.CharField(label="Target modules", required=False,
                                          help_text="Comma-separated layer names; empty picks the architecture's default "
                                                    "(query,value for BERT; q_proj,v_proj for Llama).")
    learning_rate = forms.FloatField(min_value=1e-7, max_value=1.0, required=False,
                                     help_text="Empty: scaled to the data: 2e-3 under 1,000 rows, 1e-3 under 10,000, "
                                               "5e-4 from 10,000 (small data needs bigger steps).")
    epochs = forms.IntegerField(min_value=1, max_value=100, required=False,
                                help_text="Passes over the training rows. Empty: enough passes for about 100 training "
                                          "steps (at least 3, at most 30), so a small Datanet gets more epochs.")
    batch_size = forms.IntegerField(min_value=1, max_value=1024, required=False,
                                    help_text="Rows per training step. Empty: 8 under 1,000 rows, else 16.")
    max_seq_length = forms.IntegerField(label="Max sequence length", min_value=8, max_value=8192, initial=128,
                                        help_text="Tokens per example; longer rows are truncated.")
    eval_fraction = forms.FloatField(label="Evaluation split", min_value=0.0, max_value=0.5, initial=0.1,
                                     help_text="Share of rows held out to measure the model (never trained on).")
    seed = forms.IntegerField(min_value=0, initial=0, help_text="Same seed and data give the same model on CPU.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # The choices depend on who asks: the field declares no queryset, and each form gets its own here.
        trainable = datanet_selectors.trainable_versions_for(user=user)
        self.fields["datanet_versions"].queryset = datanet_selectors.versions_visible_to(user=user).filter(
            pk__in=[v.pk for v in trainable]
        ).order_by("datanet__name", "-number")

    def clean_lora_target_modules(self):
        return [m.strip() for m in self.cleaned_data["lora_target_modules"].split(",") if m.strip()]

    def clean_datanet_versions(self):
        """Overlapping versions and Datanets no offered base model trains are refused here, with the
        service's reasons, before anything is queued."""
        from .services import fine_tune_check_datanets

        versions = self.cleaned_data["datanet_versions"]
        try:
            fine_tune_check_datanets(versions=versions)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["datanet_versions"]) from exc
        return versions


class ModelSettingsForm(forms.Form):
    price_per_inference = OpenAmountField(label="Price per inference",
                                          help_text="In OPEN per answer, up to 18 decimals (e.g. 0.05); 0 is free.")
    allow_download = forms.BooleanField(required=False, help_text="Let anyone download the adapter.")
