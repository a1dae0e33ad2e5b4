"""Realistic POST /v1/cases bodies: Chinese text, a person with name and phone.

Every body names a person with a phone number, so the handler derives a subject id and
encrypts the person's fields and the free text under that person's own key: the
per-person encryption (and, for a new phone, the key creation) is on the measured path.
Phones are unique per body (a first contact), which is the heavier path: a repeat caller
would reuse an existing key.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from jingmin_sim.people import GIVEN, SURNAMES  # the simulator's common names

BUREAU = "330106"  # 杭州市公安局西湖区分局 (a county-level bureau code)
STATIONS = ("330106001", "330106002", "330106003", "330106004")
SCOPE = "33"

_STREETS = ("文三路", "天目山路", "古墩路", "学院路", "教工路", "莫干山路", "西溪路", "留下街")
_DEMANDS = (
    "我的电动自行车昨天晚上停在小区楼下被盗了，车是绿色的雅迪，希望警察帮忙尽快找回。",
    "楼上邻居每天凌晨一两点还在装修，噪音很大，多次沟通无果，请派出所出面协调处理。",
    "刚才在地铁站附近捡到一个钱包，里面有身份证和银行卡，想交给派出所帮忙联系失主。",
    "我母亲今年七十八岁，有阿尔茨海默病，今天上午出门买菜后一直没回家，手机也打不通。",
    "接到自称公安局的电话，说我的银行卡涉嫌洗钱，要求把钱转到安全账户，我怀疑是诈骗。",
    "想咨询一下孩子的户口迁移需要准备哪些材料，以及现在能不能在网上预约办理。",
    "小区门口的路口晚上没有路灯，最近发生了好几次电动车和行人相撞，希望加强巡逻。",
    "我的身份证丢失了，需要补办，明天上午想到派出所窗口办理，请问需要预约吗？",
)
_HOPES = ("希望尽快处理并电话告知结果。", "希望民警上门了解情况。", "请派出所给个书面答复。", None)
# (channel, kind, area_type, branch, category)
_SHAPES = (
    ("call_110", "alarm", "urban", "public_order", "theft.vehicle"),
    ("call_110", "help", "urban", "patrol", "missing_person"),
    ("hotline", "opinion", "suburban", "public_order", "noise"),
    ("online", "consultation", "urban", "household", "household.transfer"),
    ("window", "service", "urban", "household", "id_card.reissue"),
    ("call_110", "alarm", "urban", "criminal", "fraud.telecom"),
    ("mailbox", "opinion", "suburban", "traffic", "road.safety"),
    ("social_media", "tip", "rural", "cyber", "fraud.telecom"),
)


def bodies(seed: int = 0) -> Iterator[dict[str, Any]]:
    """An endless stream of distinct, valid ReceiveCase bodies (each a new phone number)."""
    rng = random.Random(seed)
    for n in itertools.count():
        channel, kind, area, branch, category = _SHAPES[n % len(_SHAPES)]
        body: dict[str, Any] = {
            "bureau": BUREAU,
            "station": STATIONS[n % len(STATIONS)],
            "channel": channel,
            "kind": kind,
            "area_type": area,
            "branch": branch,
            "party_category": rng.choice(("local", "non_local", "vulnerable")),
            "category": category,
            "person": {
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                # 11 digits, unique per (seed < 10, n < 10**8): no two bodies share a person.
                "phone": f"1{3 + seed % 7}{seed % 10}{n % 100_000_000:08d}",
                "address": f"杭州市西湖区{rng.choice(_STREETS)}{rng.randint(1, 999)}号",
            },
            "demand": rng.choice(_DEMANDS),
            "source_ref": f"BENCH-{seed}-{n}",
        }
        hope = rng.choice(_HOPES)
        if hope:
            body["hoped_outcome"] = hope
        yield body
