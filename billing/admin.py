"""billing admin (classes inherit marketplace.admin.AuditedModelAdmin)."""
