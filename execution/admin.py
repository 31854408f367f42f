"""execution admin (classes inherit marketplace.admin.AuditedModelAdmin)."""
