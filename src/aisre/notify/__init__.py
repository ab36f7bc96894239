"""Notifications: Incidents sent to Slack, Microsoft Teams, PagerDuty, Opsgenie and
webhooks as NotificationRoutes declare.

``routing`` decides (pure) which route and sink gets which change; ``message`` builds the
redacted ``Notice``; one module per sink lays it out and speaks that API over httpx;
``deliver`` runs one message under the retry policy; ``base`` holds the typed errors,
backoff and the per-route rate limit. Reading routes, Secrets and Incidents and writing
the delivery records is the operator's side (``aisre.operator.notify_step``).
"""

from aisre.notify.base import RateLimiter, RetryPolicy
from aisre.notify.deliver import Delivered, deliver, merged
from aisre.notify.message import Notice, notice_for
from aisre.notify.routing import Plan, may_see, plan

__all__ = ["Delivered", "Notice", "Plan", "RateLimiter", "RetryPolicy", "deliver", "may_see", "merged", "notice_for", "plan"]
