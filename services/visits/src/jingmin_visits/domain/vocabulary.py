"""The visits service's closed vocabularies (DOMAIN.md §3.2); wire values are stable."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    SMS = "sms"
    PHONE = "phone"


class Trigger(StrEnum):
    """What a callback follows (DOMAIN.md §3.2); each has its own triggering event."""

    CASE_RESOLVED = "case_resolved"  # 带案回访: intake CaseResolved
    PETITION_RESOLVED = "petition_resolved"  # 信访回访: intake CaseResolved of a petition
    COMPLAINT_CONCLUDED = "complaint_concluded"  # 投诉办结回访
    SERVICE_RECOVERY = "service_recovery"  # follow-up after a 不满意 was put right
    ENFORCEMENT_DECISION = "enforcement_decision"  # 执法回访: intake EnforcementDecided
    CRIME_VICTIM = "crime_victim"  # 刑事被侵害人回访告知: intake CaseClassified
    PREVENTABLE_CASE = "preventable_case"  # 可防性案件回访: intake CaseClassified


class Purpose(StrEnum):
    """What the call is for, i.e. which script the officer follows."""

    SURVEY = "survey"  # ask satisfaction and sense of security
    NOTIFICATION = "notification"  # 告知: tell a crime victim how their case stands, then ask
    PREVENTION_ADVICE = "prevention_advice"  # give prevention advice, then ask


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


# ---- visits (走访) and engagement (警民互动) -------------------------------------------


class Programme(StrEnum):
    AIMIN = "aimin"  # 爱民大走访
    LEADERSHIP = "leadership"  # 领导干部大走访
    MODEL_OFFICER = "model_officer"  # 功模大走访
    HOUSEHOLD_SURVEY = "household_survey"  # 入户调查
    VULNERABLE = "vulnerable"  # 低保、孤寡老幼 visits
    OPEN_EVALUATION = "open_evaluation"  # 开门评警
    THREE_VISITS = "three_visits"  # 三访三评


class VisitMode(StrEnum):
    IN_PERSON = "in_person"
    PHONE = "phone"
    SMS = "sms"
    ONLINE = "online"
    GROUP_CHAT = "group_chat"


class TargetType(StrEnum):
    HOUSEHOLD = "household"
    BUSINESS = "business"
    INSTITUTION = "institution"
    VULNERABLE_HOUSEHOLD = "vulnerable_household"


class VisitOutcome(StrEnum):
    COMPLETED = "completed"
    NOBODY_HOME = "nobody_home"  # 敲不开门
    REFUSED = "refused"  # 进不去屋、唠不上嗑


class Feedback(StrEnum):
    SUPPORTIVE = "supportive"  # 褒奖支持
    CRITICAL = "critical"  # 批评指责
    INDIFFERENT = "indifferent"  # 事不关己


class VisitStatus(StrEnum):
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    FAILED = "failed"


class EngagementType(StrEnum):
    FORUM = "forum"  # 警民恳谈会
    OPEN_DAY = "open_day"  # 警营开放日
    POLICE_FOR_A_DAY = "police_for_a_day"  # 当一天警察
    BEAT_REPORT = "beat_report"  # 社区民警定期述职
    MONITOR_FORUM = "monitor_forum"  # 特约监督员座谈会
    LAW_OUTREACH = "law_outreach"  # 送法进企业/校园/社区


class Venue(StrEnum):
    STATION = "station"
    COMMUNITY = "community"
    ENTERPRISE = "enterprise"
    SCHOOL = "school"
    VILLAGE = "village"
    ONLINE = "online"


class IssueKind(StrEnum):
    """The intake kinds an issue raised in the field can open a case as."""

    ALARM = "alarm"
    HELP = "help"
    CONSULTATION = "consultation"
    SERVICE = "service"
    PETITION = "petition"
    OPINION = "opinion"
    TIP = "tip"


class AreaType(StrEnum):
    URBAN = "urban"
    SUBURBAN = "suburban"
    RURAL = "rural"


class Branch(StrEnum):
    PUBLIC_ORDER = "public_order"
    CRIMINAL = "criminal"
    TRAFFIC = "traffic"
    PATROL = "patrol"
    EXIT_ENTRY = "exit_entry"
    HOUSEHOLD = "household"
    CYBER = "cyber"
    OTHER = "other"
