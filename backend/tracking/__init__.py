"""The Segment Spec side of ingest: validating and normalising messages, and finding their identifiers."""
