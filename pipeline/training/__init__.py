"""Model development: labelled datasets, training and out-of-fold evaluation, adapting to a company's
labels, review loop, dev sets and model cards."""
