"""Billing's pages and /v1/ routes."""
from django.urls import path

from billing import apis, views

urlpatterns = [
    path("billing/", views.billing_page, name="billing"),
    path("billing/buy/", views.buy_credits, name="billing-buy"),
    path("billing/bought/", views.bought, name="billing-bought"),
    path("billing/usage.csv", views.usage_csv, name="billing-usage-csv"),
    path("billing/earnings.csv", views.earnings_csv, name="billing-earnings-csv"),
    path("billing/operations/", views.operations_page, name="billing-operations"),
    path("billing/operations/adjust/", views.adjust, name="billing-adjust"),
    path("v1/billing/account", apis.AccountApi.as_view(), name="api-billing-account"),
    path("v1/billing/stripe/webhook", apis.StripeWebhookApi.as_view(), name="stripe-webhook"),
    path("v1/algorithms/<str:owner>/<str:name>/versions/<str:version>/price",
         apis.PriceApi.as_view(), name="api-version-price"),
    path("v1/admin/usage", apis.AdminUsageApi.as_view(), name="api-admin-usage"),
    path("v1/admin/usage/algorithms", apis.AdminAlgorithmUsageApi.as_view(),
         name="api-admin-usage-algorithms"),
    path("v1/admin/usage/users", apis.AdminUserUsageApi.as_view(), name="api-admin-usage-users"),
]
