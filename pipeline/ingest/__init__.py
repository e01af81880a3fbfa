"""Reading complaint sources (files, folders, SQL) in chunks, checking each row, and the quarantine
that keeps a bad row with its reason instead of losing it."""
