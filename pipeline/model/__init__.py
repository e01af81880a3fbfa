"""The cause classifier: lexicon, the trained scikit-learn model, classifying batches, and the model
artifacts on disk (checksummed, trusted by hash)."""
