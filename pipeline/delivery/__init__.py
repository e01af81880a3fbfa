"""What leaves the product: the webhook outbox (exactly once per ticket) and the formula-safe tables
(CSV, XLSX, JSONL) written for people."""
