"""Published versions: immutable, each with the build it runs and the price it was given."""
import uuid

from django.db import models

from marketplace.models import User

from .algorithms import Algorithm
from .builds import Build


class AlgorithmVersion(models.Model):
    algorithm = models.ForeignKey(Algorithm, on_delete=models.CASCADE, related_name="versions")
    version_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    major = models.PositiveIntegerField()
    minor = models.PositiveIntegerField()
    patch = models.PositiveIntegerField()
    build = models.OneToOneField(Build, on_delete=models.RESTRICT, related_name="version")
    callability = models.CharField(max_length=10, choices=Algorithm.Callability.choices)
    royalty_microcredits = models.PositiveBigIntegerField()
    release_notes = models.TextField(blank=True)
    sample_input = models.TextField(blank=True)
    sample_output = models.TextField(blank=True)
    published_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-major", "-minor", "-patch"]
        constraints = [
            models.UniqueConstraint(fields=["algorithm", "major", "minor", "patch"],
                                    name="version_unique_semver"),
        ]

    def __str__(self) -> str:
        return f"{self.algorithm.path}/{self.semantic_version}"

    @property
    def semantic_version(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def is_public(self) -> bool:
        return self.callability == Algorithm.Callability.PUBLIC

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("A published version is immutable.")
        super().save(*args, **kwargs)
