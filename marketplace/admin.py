"""The admin, organised for operators. Every change made here lands in the audit log."""
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group

from marketplace import services
from marketplace.models import ApiKey, AuditEvent, Membership, Organization, User

admin.site.site_header = "Algostore operations"
admin.site.site_title = "Algostore admin"
admin.site.index_title = "Operate the store"


class AuditedModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose additions, changes and deletions are written to the audit log.

    Every app's admin classes inherit from it.
    """

    def _audit(self, request, action: str, obj, message) -> None:
        services.audit_record(action=action, actor=request.user, target=obj,
                              data={"change": str(message)[:1000]} if message else {})

    def log_addition(self, request, obj, message):
        self._audit(request, "admin.add", obj, message)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._audit(request, "admin.change", obj, message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            self._audit(request, "admin.delete", obj, None)
        return super().log_deletions(request, queryset)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(User)
class UserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    list_display = ("username", "email", "is_active", "is_staff", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "date_joined")
    search_fields = ("username", "email")


@admin.register(Organization)
class OrganizationAdmin(AuditedModelAdmin):
    list_display = ("name", "label", "org_type", "email", "created_at")
    list_filter = ("org_type", "created_at")
    search_fields = ("name", "label", "email")
    inlines = [MembershipInline]
    readonly_fields = ("uuid", "created_at")


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedModelAdmin):
    """Keys are listed and revoked here; their secrets exist nowhere to show."""

    list_display = ("masked", "name", "owner_name", "data_access", "can_manage", "created_at",
                    "last_used_at", "expires_at", "revoked_at")
    list_filter = ("data_access", "can_manage", ("revoked_at", admin.EmptyFieldListFilter),
                   "created_at")
    search_fields = ("prefix", "name", "user__username", "organization__name")
    exclude = ("key_hash",)
    readonly_fields = ("prefix", "last4", "user", "organization", "created_by", "created_at",
                       "last_used_at", "revoked_at")
    actions = ["revoke_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # a key's secret is shown once, to its owner: make keys on the keys page

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request, queryset):
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(key=key, actor=request.user, as_operator=True)
            count += 1
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, here as everywhere."""

    list_display = ("created_at", "action", "actor_username", "organization_name", "target_type",
                    "target_repr", "ip_address")
    list_filter = ("action", "target_type", "created_at")
    search_fields = ("actor_username", "organization_name", "target_repr", "target_id",
                     "ip_address")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(AuditedModelAdmin, DjangoGroupAdmin):
    pass
