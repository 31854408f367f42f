"""The site shell's /v1/ routes."""
from django.urls import path

from marketplace import apis
from marketplace.api_routing import by_method

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="api-me"),
    path("keys", by_method(get=apis.KeyListApi, post=apis.KeyCreateApi), name="api-keys"),
    path("keys/<str:prefix>", by_method(get=apis.KeyDetailApi, patch=apis.KeyUpdateApi,
                                        delete=apis.KeyRevokeApi),
         name="api-key"),
    path("organization/types", apis.OrganizationTypesApi.as_view(), name="api-org-types"),
    path("organizations", apis.OrganizationCreateApi.as_view(), name="api-orgs"),
    path("organizations/<str:name>",
         by_method(get=apis.OrganizationDetailApi, put=apis.OrganizationUpdateApi),
         name="api-org"),
    path("organizations/<str:name>/members", apis.MemberListApi.as_view(),
         name="api-org-members"),
    path("organizations/<str:name>/members/<str:username>",
         by_method(put=apis.MemberAddApi, delete=apis.MemberRemoveApi), name="api-org-member"),
]
