"""Closed vocabularies of complaints (DOMAIN.md §3.3) and supervision (§3.4); stable on the wire."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """What the complaint is about, in the seeds' own words."""

    ATTITUDE = "attitude"  # 态度恶劣, 冷硬横推, 门难进脸难看
    INACTION = "inaction"  # 不作为, 只接警不处警, 推诿拖延
    MISCONDUCT = "misconduct"  # 乱作为, 滥用强制措施, 刑讯逼供
    UNFAIR_ENFORCEMENT = "unfair_enforcement"  # 执法不公, 人情案关系案, 差异性执法
    CORRUPTION = "corruption"  # 吃拿卡要, 乱收滥罚
    SERVICE_DELAY = "service_delay"  # 拖延, 跑多次
    DISCIPLINE = "discipline"  # 警容警纪, 耍特权
    OTHER = "other"


CATEGORY_LABELS: dict[str, str] = {
    Category.ATTITUDE: "态度恶劣、冷硬横推",
    Category.INACTION: "不作为、推诿拖延",
    Category.MISCONDUCT: "乱作为、滥用强制措施",
    Category.UNFAIR_ENFORCEMENT: "执法不公",
    Category.CORRUPTION: "吃拿卡要、乱收滥罚",
    Category.SERVICE_DELAY: "办事拖延、多次跑",
    Category.DISCIPLINE: "警容警纪、耍特权",
    Category.OTHER: "其他",
}


class PartyCategory(StrEnum):
    """Who the complainant is, as intake records a party (equity figures, DOMAIN.md §4)."""

    LOCAL = "local"
    NON_LOCAL = "non_local"
    VULNERABLE = "vulnerable"


class Channel(StrEnum):
    """Where the complaint came in: intake's channels, plus a callback answer (回访)."""

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
    CALLBACK = "callback"


class Status(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"  # 受理
    INVESTIGATING = "investigating"
    CONCLUDED = "concluded"
    REPLIED = "replied"
    CLOSED = "closed"
    REOPENED = "reopened"


STATUS_LABELS: dict[str, str] = {
    Status.RECEIVED: "已收到，待受理",
    Status.ACKNOWLEDGED: "已受理",
    Status.INVESTIGATING: "调查核实中",
    Status.CONCLUDED: "已办结，待答复",
    Status.REPLIED: "已答复",
    Status.CLOSED: "已结案",
    Status.REOPENED: "已重新调查",
}


class Outcome(StrEnum):
    SUBSTANTIATED = "substantiated"  # 属实
    PARTIALLY_SUBSTANTIATED = "partially_substantiated"  # 部分属实
    UNSUBSTANTIATED = "unsubstantiated"  # 不属实
    WITHDRAWN = "withdrawn"  # 撤回


OUTCOME_LABELS: dict[str, str] = {
    Outcome.SUBSTANTIATED: "投诉属实",
    Outcome.PARTIALLY_SUBSTANTIATED: "投诉部分属实",
    Outcome.UNSUBSTANTIATED: "投诉不属实",
    Outcome.WITHDRAWN: "投诉人撤回",
}

SUBSTANTIATED = frozenset({Outcome.SUBSTANTIATED, Outcome.PARTIALLY_SUBSTANTIATED})


class Action(StrEnum):
    """What was done about a complaint (处理措施)."""

    EXPLANATION = "explanation"  # 解释说明
    APOLOGY = "apology"  # 赔礼道歉
    CORRECTION = "correction"  # 纠正执法行为
    CRITICISM_EDUCATION = "criticism_education"  # 批评教育
    ADMONISHMENT_TALK = "admonishment_talk"  # 诫勉谈话
    DISCIPLINARY = "disciplinary"  # 纪律处分
    COMPENSATION = "compensation"  # 国家赔偿/补偿
    REFERRED = "referred"  # 移送纪检监察
    TRAINING = "training"  # 培训整改


class ReplyMode(StrEnum):
    LETTER = "letter"
    SMS = "sms"
    PHONE = "phone"
    IN_PERSON = "in_person"
    ONLINE = "online"


class ReopenReason(StrEnum):
    DISPUTED = "disputed"  # the complainant disputes the closure
    REVIEW = "review"  # 督察复查
    NEW_EVIDENCE = "new_evidence"


class ExtensionReason(StrEnum):
    COMPLEX = "complex"  # 案情复杂
    WITNESSES = "witnesses"  # 证人难以联系
    EXPERT_OPINION = "expert_opinion"  # 需鉴定
    MULTI_AGENCY = "multi_agency"  # 涉及多部门
    OTHER = "other"


class Remedy(StrEnum):
    """How the underlying problem was put right: "fixed" is its own fact, apart from closure."""

    SERVICE_DELIVERED = "service_delivered"  # 事项已办理
    DECISION_REVERSED = "decision_reversed"  # 撤销/变更执法决定
    PROPERTY_RETURNED = "property_returned"  # 退还财物
    COMPENSATED = "compensated"
    PROCEDURE_CHANGED = "procedure_changed"  # 制度/流程整改
    OTHER = "other"


class Deadline(StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"  # 受理决定, 15 days
    CONCLUSION = "conclusion"  # 办结, 60 days from acceptance (+ one extension ≤ 30)


class Level(StrEnum):
    """Where an item is followed: escalation moves it one step up."""

    STATION = "station"
    BUREAU = "bureau"
    CITY = "city"


LEVEL_LABELS: dict[str, str] = {
    Level.STATION: "派出所",
    Level.BUREAU: "县（区）局",
    Level.CITY: "市局",
}


# ---- supervision -------------------------------------------------------------------------


class OrderType(StrEnum):
    TRACKING = "tracking"  # 跟踪督办
    RECTIFICATION = "rectification"  # 限期整改
    SERVICE_RECOVERY = "service_recovery"  # 不满意回访: rectify and report back


class ItemType(StrEnum):
    """What a supervision order follows."""

    CASE = "case"  # an intake case
    COMPLAINT = "complaint"
    RECTIFICATION = "rectification"  # another (rectification) order
    INSPECTION = "inspection"
    CALLBACK = "callback"


class OrderStatus(StrEnum):
    ISSUED = "issued"
    REPORTED = "reported"  # reported back, awaiting the supervisor's check
    CLOSED = "closed"


class Verdict(StrEnum):
    """The supervisor's check of a report-back."""

    RECTIFIED = "rectified"  # 整改到位
    PARTLY_RECTIFIED = "partly_rectified"
    NOT_RECTIFIED = "not_rectified"  # closed without success (e.g. escalated to accountability)


class InspectionKind(StrEnum):
    ONLINE = "online"  # 网上实时督察
    ON_SITE = "on_site"  # 现场督察
    MONTHLY_SAMPLING = "monthly_sampling"  # 月抽查 of case files


class InspectionStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"


class Severity(StrEnum):
    OBSERVATION = "observation"  # 提示
    DEFICIENCY = "deficiency"  # 问题
    VIOLATION = "violation"  # 违规


class AccountabilityKind(StrEnum):
    ADMONISHMENT_TALK = "admonishment_talk"  # 诫勉谈话
    LEADER_ACCOUNTABILITY = "leader_accountability"  # 部门首长问责
    ADMINISTRATIVE_FAULT = "administrative_fault"  # 行政过错责任追究
    WARNING_EDUCATION = "warning_education"  # 警示教育


class BasisType(StrEnum):
    """What an accountability action rests on."""

    COMPLAINT = "complaint"
    ORDER = "order"
    INSPECTION = "inspection"
    CASE = "case"
