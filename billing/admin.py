"""The ledger in the admin: read-only, since money only moves through the billing services
(manual corrections are posted from the operations page, with a reason, and audited)."""
from django.contrib import admin

from billing.models import (Account, CreditPurchase, Entry, KeySpend, LedgerTransaction,
                            StripeEvent, UsageRecord)


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class EntryInline(admin.TabularInline):
    model = Entry
    extra = 0
    can_delete = False
    readonly_fields = ("account", "amount", "kind", "version", "created_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "holder_name", "balance", "reserved", "created_at")
    list_filter = ("kind",)
    search_fields = ("holder_name",)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "kind", "memo", "request_id", "created_by")
    list_filter = ("kind", "created_at")
    search_fields = ("memo", "request_id", "trace_id")
    date_hierarchy = "created_at"
    inlines = [EntryInline]


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "created_at", "algorithm_path", "version_text", "status",
                    "held", "royalty", "compute", "run_ms")
    list_filter = ("status",)
    search_fields = ("request_id", "trace_id", "algorithm_path")


@admin.register(KeySpend)
class KeySpendAdmin(ReadOnlyAdmin):
    list_display = ("key", "month", "spent", "carried", "reserved")


@admin.register(CreditPurchase)
class CreditPurchaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "account", "pack", "amount_cents", "status",
                    "refunded_cents")
    list_filter = ("status", "pack")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "received_at", "outcome")
    list_filter = ("type",)
    search_fields = ("event_id",)
