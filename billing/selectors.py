"""billing reads: QuerySets and plain values for views and other apps."""
