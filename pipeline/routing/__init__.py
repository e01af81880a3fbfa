"""From a predicted cause to a remedy, owner queue, priority and deadline (rules are data files), and
the escalation of complaints that cannot wait."""
