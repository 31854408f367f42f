"""The catalog in the operators' admin: categories are defined here; the rest is inspected."""
from django.contrib import admin

from catalog.models import Algorithm, AlgorithmVersion, Build, Category, Tag
from marketplace.admin import AuditedModelAdmin


@admin.register(Category)
class CategoryAdmin(AuditedModelAdmin):
    list_display = ("name", "slug", "position")
    prepopulated_fields = {"slug": ("name",)}
    list_editable = ("position",)


@admin.register(Tag)
class TagAdmin(AuditedModelAdmin):
    search_fields = ("name",)


class VersionInline(admin.TabularInline):
    model = AlgorithmVersion
    extra = 0
    can_delete = False
    fields = ("major", "minor", "patch", "callability", "royalty_microcredits", "published_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # versions are published by their authors, never made here


@admin.register(Algorithm)
class AlgorithmAdmin(AuditedModelAdmin):
    list_display = ("path", "label", "language", "callability", "royalty_microcredits",
                    "network_access", "calls_30d", "created_at")
    list_filter = ("language", "callability", "network_access", "categories", "created_at")
    search_fields = ("owner_name", "name", "label", "tagline")
    filter_horizontal = ("categories", "tags")
    readonly_fields = ("uuid", "owner_user", "owner_org", "owner_name", "name", "current_source",
                       "calls_30d", "created_by", "created_at", "updated_at")
    inlines = [VersionInline]


@admin.register(Build)
class BuildAdmin(AuditedModelAdmin):
    list_display = ("algorithm", "content_hash", "status", "created_at", "finished_at")
    list_filter = ("status", "language", "created_at")
    search_fields = ("algorithm__name", "algorithm__owner_name", "content_hash")
    readonly_fields = [f.name for f in Build._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
