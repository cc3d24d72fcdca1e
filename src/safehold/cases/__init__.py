"""Cases: queues, the case state machine, decisions, comments and reviewer wellness."""

from safehold.cases.model import (
    DECISION_ACTIONS,
    STATES,
    AccountHistory,
    CaseInfo,
    CaseRef,
    CaseView,
    CommentInfo,
    DecisionInfo,
    EventSummary,
    ItemInfo,
    Page,
    QueueCount,
)
from safehold.cases.service import Cases
from safehold.cases.wellness import Exposure, Wellness

__all__ = [
    "DECISION_ACTIONS",
    "STATES",
    "AccountHistory",
    "CaseInfo",
    "CaseRef",
    "CaseView",
    "Cases",
    "CommentInfo",
    "DecisionInfo",
    "EventSummary",
    "Exposure",
    "ItemInfo",
    "Page",
    "QueueCount",
    "Wellness",
]
