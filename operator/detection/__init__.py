"""Detection: cluster signals and Alertmanager alerts in, Incidents out.

watch.py lists and watches the cluster (server-side selectors) and feeds signals.py,
which turns raw objects into Signal envelopes (pure). The Detector (detector.py) folds
signals into candidate roots (correlate.py, pure), applies thresholds, storm control and
severity rules, and store.py writes the Incidents. alertmanager.py turns webhook
payloads into the same Signals.
"""
