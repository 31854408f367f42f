"""Root URLs: the pages, the admin, health, and each app's /v1/ API."""
from django.contrib import admin
from django.urls import include, path

from marketplace import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("signup/", views.signup, name="signup"),
    path("welcome/", views.welcome, name="welcome"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("account/password/done/", views.PasswordChangeDoneView.as_view(),
         name="password_change_done"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("account/keys/", views.keys_page, name="keys"),
    path("account/keys/<str:prefix>/revoke/", views.key_revoke, name="key-revoke"),
    path("account/keys/<str:prefix>/cap/", views.key_set_cap, name="key-cap"),
    path("orgs/", views.organizations_page, name="organizations"),
    path("orgs/<str:name>/", views.organization_page, name="organization"),
    path("docs/", views.docs_page, name="docs"),
    path("docs/<slug:slug>/", views.docs_page, name="docs-page"),
    path("admin/", admin.site.urls),
    path("", include("catalog.urls")),
    path("", include("execution.urls")),
    path("", include("billing.urls")),
    path("", include("datastore.urls")),
    path("v1/", include("marketplace.api_urls")),
    path("v1/", include("catalog.api_urls")),
]
