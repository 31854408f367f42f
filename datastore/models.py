"""Hosted data: collections owned by a user or an organization, and the files in them.

The bytes live in the ``data`` storage (django-storages: a folder locally, S3 when
configured) under a key that never contains a caller's path: ``<collection uuid>/<file
uuid>``, so no name a caller picks can reach anywhere else in the store.
"""
import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

from marketplace.models import Organization, User
from marketplace.models.accounts import exactly_one_owner

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,254}$"
validate_data_name = RegexValidator(
    NAME_PATTERN, "Names are 1 to 255 characters: letters, digits, spaces, '_', '-' and '.', "
                  "starting with a letter or digit.")


class Collection(models.Model):
    class ReadAcl(models.TextChoices):
        PRIVATE = "private", "Only me"
        ALGORITHMS = "algorithms", "Me and my algorithms"
        PUBLIC = "public", "Everyone"

    ACL_STRINGS = {ReadAcl.PRIVATE: [], ReadAcl.ALGORITHMS: ["algo://.my/*"],
                   ReadAcl.PUBLIC: ["user://*"]}

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="collections")
    owner_org = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="collections")
    owner_name = models.CharField(max_length=40, db_index=True)
    name = models.CharField(max_length=255, validators=[validate_data_name])
    read_acl = models.CharField(max_length=12, choices=ReadAcl.choices,
                                default=ReadAcl.ALGORITHMS)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner_name", "name"]
        # A call tree's data://.session is looked up by its name alone as its root call
        # closes (every composed call's root): without this, a scan of every collection.
        indexes = [models.Index(fields=["name"], name="datastore_collection_name")]
        constraints = [
            models.UniqueConstraint(Lower("owner_name"), Lower("name"),
                                    name="datastore_collection_unique_path"),
            exactly_one_owner("datastore_collection_one_owner"),
        ]

    def __str__(self) -> str:
        return f"data://{self.owner_name}/{self.name}"

    @property
    def acl(self) -> dict:
        return {"read": list(self.ACL_STRINGS[self.read_acl])}


class DataFile(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255, validators=[validate_data_name])
    storage_key = models.CharField(max_length=200, unique=True)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["collection", "name"],
                                               name="datastore_file_unique_name")]

    def __str__(self) -> str:
        return f"{self.collection}/{self.name}"


class Connector(models.Model):
    """An outside store reachable through the Data API as ``s3://bucket/key``, with its
    owner's credentials, encrypted at rest, never returned and never given to algorithms."""

    class Kind(models.TextChoices):
        S3 = "s3", "Amazon S3 or compatible"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="connectors")
    owner_org = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="connectors")
    owner_name = models.CharField(max_length=40, db_index=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.S3)
    bucket = models.CharField(max_length=63)
    path_prefix = models.CharField(max_length=500, blank=True,
                                   help_text="Only keys under this prefix are reachable.")
    writable = models.BooleanField(default=False)
    endpoint_url = models.URLField(blank=True, help_text="For S3-compatible stores.")
    region = models.CharField(max_length=40, blank=True)
    encrypted_access_key_id = models.BinaryField()
    encrypted_secret_access_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner_name", "bucket"]
        constraints = [
            models.UniqueConstraint(Lower("owner_name"), "kind", "bucket",
                                    name="datastore_connector_one_per_bucket"),
            exactly_one_owner("datastore_connector_one_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}://{self.bucket}/{self.path_prefix}"
