"""What aisre knows beyond one Investigation: the runbooks teams keep in Git (and, as it
grows, the memory of past incidents)."""
