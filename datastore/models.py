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
        constraints = [
            models.UniqueConstraint(Lower("owner_name"), Lower("name"),
                                    name="datastore_collection_unique_path"),
            models.CheckConstraint(
                condition=(models.Q(owner_user__isnull=False, owner_org__isnull=True)
                           | models.Q(owner_user__isnull=True, owner_org__isnull=False)),
                name="datastore_collection_one_owner"),
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
