"""catalog models (they arrive with this app's issue)."""
