"""Forms of the governance pages. Amounts are typed in OPEN (`rewards.amounts.OpenAmountField`), the fee
split in basis points (100 bps = 1%)."""

from django import forms

from rewards.amounts import OpenAmountField

BPS = 10_000


class FeeSplitProposalForm(forms.Form):
    protocol_bps = forms.IntegerField(label="Protocol treasury (bps)", min_value=0, max_value=BPS)
    owner_bps = forms.IntegerField(label="Model owner (bps)", min_value=0, max_value=BPS)
    contributors_bps = forms.IntegerField(label="Data contributors (bps)", min_value=0, max_value=BPS)
    description = forms.CharField(label="Description", max_length=2_000, widget=forms.Textarea(attrs={"rows": 3}))


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
