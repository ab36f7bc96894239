"""aisre on Kafka: one operator per cluster publishes, a fleet reads (docs/fleet.md).

- ``envelope``: the record every topic carries (``schema_version``, type, tenant, key,
  time, data), the topic names of a tenant, the external signal a producer outside the
  cluster sends, and the Incident lifecycle changes derived from an Incident (pure).
- ``kafka``: connection settings (TLS/SASL) and topic creation; the one seam to the broker.
- ``publisher``: a bounded, non-blocking, idempotent producer that counts what it drops.
- ``intake``: external signal records → ``Signal`` or a dead-letter reason (pure).
- ``consumer``: the consumer loop that stores signals before it commits, and dead-letters.
- ``view``: the fleet view (every tenant's open Incidents) read from the incidents topics.

Below the operator and the CLI, above ``aisre.api``; it never imports the operator.
"""
