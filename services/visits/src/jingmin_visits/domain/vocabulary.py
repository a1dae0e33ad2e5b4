"""The visits service's closed vocabularies (DOMAIN.md §3.2); wire values are stable."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    SMS = "sms"
    PHONE = "phone"


class Trigger(StrEnum):
    """What a callback follows (带案回访, 信访回访); more join as their services exist."""

    CASE_RESOLVED = "case_resolved"
    PETITION_RESOLVED = "petition_resolved"


class SuppressionReason(StrEnum):
    DOMESTIC_VIOLENCE = "domestic_violence"
    SEXUAL_OFFENCE = "sexual_offence"
    JUVENILE = "juvenile"
    DEATH_OR_SERIOUS_INJURY = "death_or_serious_injury"
    INFORMANT = "informant"
    COVERT = "covert"
    OPTED_OUT = "opted_out"


class AttemptOutcome(StrEnum):
    REACHED = "reached"
    UNREACHABLE = "unreachable"
    DECLINED = "declined"


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意


class Security(StrEnum):
    SAFE = "safe"  # 安全
    BASICALLY_SAFE = "basically_safe"  # 基本安全
    UNSAFE = "unsafe"  # 不安全


class Status(StrEnum):
    SCHEDULED = "scheduled"
    SUPPRESSED = "suppressed"
    ANSWERED = "answered"
    DECLINED = "declined"
    EXPIRED = "expired"


OPEN = frozenset({Status.SCHEDULED})
