"""The intake service's closed vocabularies (DOMAIN.md §3.1); wire values are stable."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    CALL_110 = "call_110"
    CALL_122 = "call_122"
    ONLINE = "online"
    SOCIAL_MEDIA = "social_media"
    MAILBOX = "mailbox"
    HOTLINE = "hotline"
    LETTER = "letter"
    VISIT = "visit"
    WINDOW = "window"
    DEPUTY = "deputy"
    MONITOR = "monitor"
    FIELD = "field"
    TRANSFER_IN = "transfer_in"


class Kind(StrEnum):
    ALARM = "alarm"
    HELP = "help"
    CONSULTATION = "consultation"
    SERVICE = "service"
    PETITION = "petition"
    OPINION = "opinion"
    TIP = "tip"
    # 投诉 about police conduct: intake registers it and hands it over; the complaints
    # service consumes CaseReceived with this kind and owns acceptance and conclusion.
    COMPLAINT = "complaint"


class ComplaintCategory(StrEnum):
    """The complaints service's categories (DOMAIN.md §3.3): a complaint's `category`."""

    ATTITUDE = "attitude"  # 态度恶劣, 冷硬横推
    INACTION = "inaction"  # 不作为, 只接警不处警
    MISCONDUCT = "misconduct"  # 乱作为, 滥用强制措施
    UNFAIR_ENFORCEMENT = "unfair_enforcement"  # 执法不公, 差异性执法
    CORRUPTION = "corruption"  # 吃拿卡要, 乱收滥罚
    SERVICE_DELAY = "service_delay"  # 拖延, 跑多次
    DISCIPLINE = "discipline"  # 警容警纪, 耍特权
    OTHER = "other"


class Priority(StrEnum):
    """Reply classes of the online-reply standard (DOMAIN.md §5)."""

    URGENT = "urgent"
    UTILITIES = "utilities"
    GENERAL = "general"
    COMPLEX = "complex"


class AreaType(StrEnum):
    URBAN = "urban"
    SUBURBAN = "suburban"
    RURAL = "rural"


class PartyCategory(StrEnum):
    LOCAL = "local"
    NON_LOCAL = "non_local"
    VULNERABLE = "vulnerable"


class Branch(StrEnum):
    PUBLIC_ORDER = "public_order"  # 治安
    CRIMINAL = "criminal"  # 刑侦
    TRAFFIC = "traffic"  # 交警
    PATROL = "patrol"  # 巡特警
    EXIT_ENTRY = "exit_entry"  # 出入境
    HOUSEHOLD = "household"  # 户政
    CYBER = "cyber"  # 网安
    OTHER = "other"  # 其他


class HoursType(StrEnum):
    REGULAR = "regular"
    EXTENDED = "extended"
    STAGGERED = "staggered"
    HOLIDAY = "holiday"


class TransferTarget(StrEnum):
    INTERNAL = "internal"
    EXTERNAL = "external"


class RejectReason(StrEnum):
    NOT_POLICE_MATTER = "not_police_matter"
    DUPLICATE = "duplicate"
    FALSE_REPORT = "false_report"
    PRANK = "prank"
    INSUFFICIENT_INFORMATION = "insufficient_information"
    OUTSIDE_JURISDICTION = "outside_jurisdiction"
    OTHER = "other"


class EnforcementDecision(StrEnum):
    """The kind of enforcement decision taken on a case (执法决定), which 执法回访 follows."""

    ADMINISTRATIVE_PENALTY = "administrative_penalty"  # 行政处罚
    ADMINISTRATIVE_COMPULSION = "administrative_compulsion"  # 行政强制
    NO_PENALTY = "no_penalty"  # 不予处罚


class Status(StrEnum):
    RECEIVED = "received"
    ASSIGNED = "assigned"
    DISPATCHED = "dispatched"
    ON_SCENE = "on_scene"
    IN_SERVICE = "in_service"
    REOPENED = "reopened"
    RESOLVED = "resolved"
    TRANSFERRED = "transferred"
    ESCALATED = "escalated"
    REJECTED = "rejected"
    CLOSED = "closed"


OPEN = frozenset(
    {
        Status.RECEIVED,
        Status.ASSIGNED,
        Status.DISPATCHED,
        Status.ON_SCENE,
        Status.IN_SERVICE,
        Status.REOPENED,
    }
)
OUTCOMES = frozenset({Status.RESOLVED, Status.TRANSFERRED, Status.ESCALATED, Status.REJECTED})


class Deadline(StrEnum):
    """Which promise a due time belongs to."""

    # online message accepted / petition acceptance decision / complaint handed over
    FIRST_CONTACT = "first_contact"
    DISPATCH = "dispatch"  # alarm dispatched after answer
    ARRIVAL = "arrival"  # on scene after dispatch, by area type
    RESOLUTION = "resolution"  # reply / conclusion / committed service time
