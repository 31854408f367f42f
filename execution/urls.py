"""This app's routes (its /v1/ API arrives with its issue)."""
urlpatterns: list = []
