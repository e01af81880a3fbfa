"""The nightly run's steps as plain functions (one batch path from a raw chunk to stored records) and
what a run leaves behind: summary, quarantine file, no orphaned processes."""
