"""catalog admin (classes inherit marketplace.admin.AuditedModelAdmin)."""
