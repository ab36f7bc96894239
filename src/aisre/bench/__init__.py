"""aisre.bench: the scenario runner behind ``aisre bench``. It applies fault scenarios
(``scenarios/*.yaml``, format in shared SCENARIOS.md) to the local cluster, simulates
what the kubelet would report with KWOK, and scores the operator's conclusions."""
