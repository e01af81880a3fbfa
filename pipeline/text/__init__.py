"""Complaint text before the model: normalising, masking personal data, and word segmentation."""
