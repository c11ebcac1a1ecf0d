"""Forms of the governance pages. Amounts are typed in OPEN (`rewards.amounts.OpenAmountField`), the fee
split in basis points (100 bps = 1%), the epoch length in hours and the share policy's false-discovery rate as
a fraction (0.1). Only what is not a value at all is refused here; the parameter registry decides the bounds
and its refusal is shown in words (`services.proposal_submit`)."""

from decimal import Decimal

from django import forms

from rewards.amounts import OpenAmountField

BPS = 10_000


class FeeSplitProposalForm(forms.Form):
    protocol_bps = forms.IntegerField(label="Protocol treasury (bps)", min_value=0, max_value=BPS)
    owner_bps = forms.IntegerField(label="Model owner (bps)", min_value=0, max_value=BPS)
    contributors_bps = forms.IntegerField(label="Data contributors (bps)", min_value=0, max_value=BPS)
    description = forms.CharField(label="Description", max_length=2_000, widget=forms.Textarea(attrs={"rows": 3}))


class EpochLengthProposalForm(forms.Form):
    epoch_length_hours = forms.DecimalField(
        label="Epoch length (hours)", min_value=Decimal("0.01"), max_digits=9, decimal_places=2,
        help_text="How often earnings epochs close: 24 is a day, 168 a week.")
    description = forms.CharField(label="Description", max_length=2_000, widget=forms.Textarea(attrs={"rows": 3}))

    def epoch_length_s(self) -> int:
        return int(self.cleaned_data["epoch_length_hours"] * 3_600)


class SharePolicyProposalForm(forms.Form):
    fdr = forms.DecimalField(
        label="False-discovery rate", min_value=Decimal("0.0001"), max_value=Decimal("0.9999"), max_digits=5,
        decimal_places=4, help_text="Of the credit groups paid on an answer, the share expected to be paid on "
                                    "noise: 0.1 is one in ten.")
    top_groups = forms.IntegerField(label="Most credit groups paid per answer", min_value=1, max_value=1_000_000)
    description = forms.CharField(label="Description", max_length=2_000, widget=forms.Textarea(attrs={"rows": 3}))

    def fdr_bps(self) -> int:
        return int(self.cleaned_data["fdr"] * BPS)


class DelegateForm(forms.Form):
    amount = OpenAmountField(label="OPEN to wrap into vOPEN", required=False,
                             help_text="In OPEN (e.g. 100); 0 or empty wraps nothing and only delegates.")
    delegatee = forms.CharField(label="Delegate to", required=False, max_length=42,
                                help_text="An address; empty: yourself.")


class VoteForm(forms.Form):
    support = forms.ChoiceField(choices=[("for", "For"), ("against", "Against"), ("abstain", "Abstain")])
    reason = forms.CharField(label="Reason (optional)", required=False, max_length=500)


class StakeForm(forms.Form):
    datanet = forms.SlugField(label="Datanet (its slug)")
    amount = OpenAmountField(label="Amount of OPEN", required=False, min_value=0)


class StakeRequirementForm(forms.Form):
    minimum = OpenAmountField(label="Stake required to contribute (OPEN)", min_value=0,
                              help_text="In OPEN; 0 removes the requirement.")
