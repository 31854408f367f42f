"""datastore admin (classes inherit marketplace.admin.AuditedModelAdmin)."""
