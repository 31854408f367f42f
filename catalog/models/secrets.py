"""Algorithm secrets: encrypted at rest, injected into that algorithm's runners only."""
import uuid

from django.db import models

from .algorithms import Algorithm

ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,63}$"


class AlgorithmSecret(models.Model):
    secret_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    algorithm = models.ForeignKey(Algorithm, on_delete=models.CASCADE, related_name="secrets")
    short_name = models.CharField(max_length=64)
    secret_key = models.CharField(max_length=64, help_text="The environment variable's name.")
    encrypted_value = models.BinaryField()
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["algorithm", "secret_key"],
                                               name="secret_unique_env_name")]
        ordering = ["secret_key"]

    def __str__(self) -> str:
        return f"{self.algorithm.path}: {self.secret_key}"
