"""What quality managers read: cause trends, service-recovery figures, audit-adjusted shares, and the
HTML / Excel / markdown report."""
