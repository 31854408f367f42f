from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog: algorithms, versions, builds"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from catalog.resolution_cache import resolutions
        from catalog.models import Algorithm, AlgorithmVersion
        from marketplace.models import Membership, Organization, User

        # What a call's resolution depends on: the algorithm (visibility, ownership), its
        # versions, memberships (who manages an organization's algorithms), and the owners.
        for model in (Algorithm, AlgorithmVersion, Membership, Organization, User):
            for signal in (post_save, post_delete):
                signal.connect(resolutions.bump_on_commit, sender=model,
                               dispatch_uid=f"resolution-cache-{signal}-{model.__name__}")
        # The runner environment of an algorithm: its secrets.
        from catalog.models import AlgorithmSecret
        from catalog.services.secrets import environments

        for signal in (post_save, post_delete):
            signal.connect(environments.bump_on_commit, sender=AlgorithmSecret,
                           dispatch_uid=f"secrets-cache-{signal}")
