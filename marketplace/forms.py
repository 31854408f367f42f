"""Forms of the site shell's pages."""
from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils import timezone

from marketplace.models import ApiKey, Membership, Organization, User
from marketplace.models.api_keys import ALGO_PATTERN


class SignupForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("username", "email")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True


class KeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, initial="My key")
    owner = forms.ChoiceField(help_text="A key acts for you or for an organization you administer.")
    algorithms = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), initial="algo://*", required=False,
        help_text="One pattern per line: algo://* (everything), algo://alice/*, "
                  "algo://alice/sentiment/*. Empty: no algorithm may be called.",
    )
    data_access = forms.ChoiceField(choices=ApiKey.DataAccess.choices,
                                    initial=ApiKey.DataAccess.READ_WRITE)
    can_manage = forms.BooleanField(required=False, initial=True,
                                    label="May create and publish algorithms")
    expires_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                 help_text="Optional. The key stops working at the start of that day (UTC).")
    monthly_cap_credits = forms.DecimalField(
        required=False, min_value=0, max_value=10 ** 12, max_digits=19, decimal_places=6,
        label="Monthly spending cap (credits)",
        help_text="Optional. Calls that would take this key past it in a calendar month get "
                  "402 instead of running. 10,000 credits = US$ 1.")

    def __init__(self, *args, organizations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.organizations = {org.name: org for org in organizations}
        self.fields["owner"].choices = [("", "Me")] + [
            (name, f"Organization: {name}") for name in self.organizations
        ]
        self.fields["owner"].required = False

    def monthly_spend_cap(self) -> int | None:
        return credits_to_microcredits(self.cleaned_data.get("monthly_cap_credits"))

    def clean_algorithms(self) -> list[str]:
        patterns = [line.strip() for line in self.cleaned_data["algorithms"].splitlines()]
        patterns = [p for p in patterns if p]
        for pattern in patterns:
            if not ALGO_PATTERN.match(pattern):
                raise forms.ValidationError(
                    f"'{pattern}' is not a pattern: use algo://*, algo://owner/*, "
                    "algo://owner/name/* or algo://owner/name/version")
        return patterns

    def clean_expires_on(self):
        day = self.cleaned_data.get("expires_on")
        if day and day <= timezone.now().date():
            raise forms.ValidationError("Choose a day in the future.")
        return day

    def organization(self) -> Organization | None:
        return self.organizations.get(self.cleaned_data.get("owner") or "")


class OrganizationCreateForm(forms.ModelForm):
    url = forms.URLField(required=False, assume_scheme="https")

    class Meta:
        model = Organization
        fields = ("name", "label", "email", "url")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=40)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


def credits_to_microcredits(value) -> int | None:
    return None if value is None else int(value * 1_000_000)


class KeyCapForm(forms.Form):
    monthly_cap_credits = forms.DecimalField(required=False, min_value=0, max_value=10 ** 12,
                                             max_digits=19, decimal_places=6)
