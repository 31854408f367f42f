"""billing write operations: plain functions, called by views, tasks and other apps."""
