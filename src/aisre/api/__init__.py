"""The aisre API: typed models of the CRDs (group ``aisre.dev``, ``v1alpha1``), the
root-cause taxonomy and action catalog, and the CRD generator. The bottom layer: it
imports nothing else of aisre.
"""

from aisre.api.incident import Incident, IncidentSpec, IncidentStatus
from aisre.api.investigation import Investigation, InvestigationSpec, InvestigationStatus
from aisre.api.meta import API_VERSION, GROUP, VERSION, Condition, ConditionStatus
from aisre.api.notification_route import NotificationRoute, NotificationRouteSpec
from aisre.api.remediation_policy import RemediationPolicy, RemediationPolicySpec, RemediationPolicyStatus
from aisre.api.runbook import Runbook, RunbookSpec
from aisre.api.taxonomy import ActionType, AgentName, RemediationMode, RootCauseCategory, Severity

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ActionType",
    "AgentName",
    "Condition",
    "ConditionStatus",
    "Incident",
    "IncidentSpec",
    "IncidentStatus",
    "Investigation",
    "InvestigationSpec",
    "InvestigationStatus",
    "NotificationRoute",
    "NotificationRouteSpec",
    "RemediationMode",
    "RemediationPolicy",
    "RemediationPolicySpec",
    "RemediationPolicyStatus",
    "RootCauseCategory",
    "Runbook",
    "RunbookSpec",
    "Severity",
]
