"""Forms of the publish flow. Money is typed in credits and stored in microcredits."""
from decimal import Decimal

from django import forms

from catalog.models import Algorithm, Category

MICRO = Decimal(1_000_000)


class RoyaltyField(forms.DecimalField):
    def __init__(self, **kwargs):
        super().__init__(min_value=0, max_digits=12, decimal_places=6, initial=0,
                         label="Royalty per call (credits)",
                         help_text="10,000 credits = US$1. You earn 70% of it.", **kwargs)


def to_microcredits(credits: Decimal | None) -> int:
    return int((credits or Decimal(0)) * MICRO)


class AlgorithmCreateForm(forms.Form):
    owner = forms.ChoiceField(help_text="Publish under your name or an organization's.")
    name = forms.RegexField(regex=r"^[A-Za-z][A-Za-z0-9_]{0,63}$", max_length=64,
                            help_text="Letters, digits, underscores; it is in the URL.")
    label = forms.CharField(max_length=100, required=False)
    tagline = forms.CharField(max_length=200, required=False)
    language = forms.ChoiceField(choices=Algorithm.Language.choices)
    royalty = RoyaltyField()

    def __init__(self, *args, owners=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [(o, o) for o in owners]


class SettingsForm(forms.Form):
    label = forms.CharField(max_length=100, required=False)
    tagline = forms.CharField(max_length=200, required=False)
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), required=False,
                              label="Docs (Markdown)")
    license = forms.CharField(max_length=60, required=False)
    source_visibility = forms.ChoiceField(choices=Algorithm.SourceVisibility.choices)
    network_access = forms.ChoiceField(choices=Algorithm.NetworkAccess.choices)
    pipeline_enabled = forms.BooleanField(required=False, label="May call other algorithms")
    royalty = RoyaltyField()
    categories = forms.ModelMultipleChoiceField(queryset=Category.objects.all(), required=False,
                                                to_field_name="slug",
                                                widget=forms.CheckboxSelectMultiple)
    tags = forms.CharField(required=False, help_text="Comma-separated.")

    @classmethod
    def for_algorithm(cls, algorithm: Algorithm, data=None) -> "SettingsForm":
        initial = {f: getattr(algorithm, f) for f in ("label", "tagline", "summary", "license",
                                                      "source_visibility", "network_access",
                                                      "pipeline_enabled")}
        initial["royalty"] = Decimal(algorithm.royalty_microcredits) / MICRO
        initial["categories"] = [c.slug for c in algorithm.categories.all()]
        initial["tags"] = ", ".join(t.name for t in algorithm.tags.all())
        return cls(data, initial=initial)

    def service_fields(self) -> dict:
        data = dict(self.cleaned_data)
        data["royalty_microcredits"] = to_microcredits(data.pop("royalty"))
        data["categories"] = [c.slug for c in data["categories"]]
        data["tags"] = [t.strip() for t in data["tags"].split(",") if t.strip()]
        return data


class PublishForm(forms.Form):
    version_type = forms.ChoiceField(choices=[("minor", "Minor (new features)"),
                                              ("revision", "Revision (fixes)"),
                                              ("major", "Major (breaking changes)")])
    callability = forms.ChoiceField(choices=Algorithm.Callability.choices)
    release_notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    sample_input = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False,
                                   help_text="JSON or text, shown on the algorithm's page.")
    sample_output = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class UploadForm(forms.Form):
    bundle = forms.FileField(help_text=".tar.gz or .zip with src/<name>.py (or .js) and "
                                       "requirements.txt")
