from django.apps import AppConfig


class DatastoreConfig(AppConfig):
    name = "datastore"
    verbose_name = "Data: hosted collections and connectors"
