"""aisre.ranking: from evidence to ranked root-cause hypotheses. A library of fault
patterns over findings, a causal graph of the objects that follows failures to their
origin, and confidence calibration. Pure: it reads findings, never the cluster."""
