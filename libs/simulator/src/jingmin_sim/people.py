"""Synthetic residents: names, mobile numbers and ID numbers that look real and are not.

Every person is drawn from a per-station pool, so the same resident can call 110 twice,
come back to the window, or answer two callbacks: the platform's pseudonymous subject ids
(derived from the phone or ID number) then link their contacts as they would in life.
Mobile numbers use real operator prefixes, ID numbers the real GB 11643 layout and check
digit with the bureau's own region code; the digits after that are random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from jingmin_sim.model import PARTY_SHARES, SURVEY_AGE, SURVEY_P_MALE, choose

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
)
GIVEN = (
    "伟",
    "芳",
    "娜",
    "秀英",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀兰",
    "霞",
    "平",
    "刚",
    "桂英",
    "建华",
    "建国",
    "国强",
    "丽华",
    "海燕",
    "晓东",
    "志强",
    "美玲",
    "子涵",
    "浩然",
    "欣怡",
    "一诺",
    "雨泽",
    "梓萱",
    "宇轩",
    "佳怡",
    "俊杰",
    "红梅",
    "金凤",
    "德明",
    "永福",
    "春花",
    "建新",
    "文斌",
    "玉兰",
    "慧敏",
    "思远",
)
# China Mobile, Unicom and Telecom mobile prefixes.
MOBILE_PREFIXES = (
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "147",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "178",
    "182",
    "183",
    "187",
    "188",
    "198",
    "130",
    "131",
    "132",
    "155",
    "156",
    "166",
    "175",
    "176",
    "185",
    "186",
    "133",
    "149",
    "153",
    "173",
    "177",
    "180",
    "181",
    "189",
    "191",
    "199",
)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
POOL_SIZE = 4000


def id_check_digit(first17: str) -> str:
    """GB 11643-1999: weighted sum of the first 17 digits mod 11."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True)
class Resident:
    name: str
    phone: str
    id_number: str
    # Residents differ in how they judge the police (some are never pleased): a small
    # random tilt to every answer they give.
    temperament: float
    party: str  # local | non_local | vulnerable (DOMAIN.md §3.1, equity gap)

    def person(self, *, with_id: bool = False, with_name: bool = True) -> dict[str, str]:
        out = {"phone": self.phone}
        if with_name:
            out["name"] = self.name
        if with_id:
            out["id_number"] = self.id_number
        return out


def resident(seed: str, station: str, index: int) -> Resident:
    """Resident `index` of a station: the same person for the same seed, drawn on demand."""
    rng = random.Random(f"{seed}:resident:{station}:{index}")
    name = rng.choice(SURNAMES) + rng.choice(GIVEN)
    phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    party = rng.choices(tuple(PARTY_SHARES), weights=tuple(PARTY_SHARES.values()))[0]
    # Non-local residents are registered in other provinces.
    region = (
        station[:6]
        if party != "non_local"
        else rng.choice(
            ("410102", "510104", "360102", "430102", "420102", "340104", "522301", "350102")
        )
    )
    born = date(1945, 1, 1) + timedelta(days=rng.randrange(365 * 62))
    if party == "vulnerable" and rng.random() < 0.6:
        born = date(1935, 1, 1) + timedelta(days=rng.randrange(365 * 20))  # 孤寡老人
    first17 = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return Resident(
        name=name,
        phone=phone,
        id_number=first17 + id_check_digit(first17),
        temperament=rng.gauss(0.0, 0.5),
        party=party,
    )


def pick_index(rng: random.Random) -> int:
    """A resident index with a heavy head: a few people contact the police often."""
    u = rng.random()
    return int(POOL_SIZE * u * u * u) if rng.random() < 0.3 else rng.randrange(POOL_SIZE)


# ---- the resident survey's frame ----------------------------------------------------------

# Frame numbers are obviously not real: 13800, the station's number (two digits), the
# frame row (four). Nobody dialling one from a test stack's data reaches a person.
FAKE_PHONE_PREFIX = "13800"


@dataclass(frozen=True)
class FramePerson:
    """One row of a station's survey frame (its household register, as the bureau keeps it)."""

    index: int
    name: str
    phone: str
    address: str
    age_band: str
    sex: str
    residence: str  # local (本地户籍) | non_local (流动人口)
    temperament: float

    def row(self) -> dict[str, str]:
        return {
            "age_band": self.age_band,
            "sex": self.sex,
            "residence": self.residence,
            "name": self.name,
            "phone": self.phone,
            "address": self.address,
        }


def frame_phone(station: str, index: int) -> str:
    return f"{FAKE_PHONE_PREFIX}{int(station[-3:]) % 100:02d}{index:04d}"


def frame_index(phone: str | None) -> int | None:
    """The frame row a frame number stands for (None: not one of ours)."""
    if not phone or not phone.startswith(FAKE_PHONE_PREFIX) or len(phone) != 11:
        return None
    return int(phone[-4:])


@lru_cache(maxsize=64)
def survey_frame(seed: str, station: str, size: int, place: str) -> tuple[FramePerson, ...]:
    """A station's frame: `size` invented adults with the model's strata shares (the same
    for the same seed: fieldwork looks a sampled person up by the row their number names)."""
    rng = random.Random(f"{seed}:survey-frame:{station}")
    share = PARTY_SHARES["non_local"] / sum(PARTY_SHARES.values())
    people = []
    for index in range(min(size, 10_000)):
        residence = "non_local" if rng.random() < share else "local"
        people.append(
            FramePerson(
                index=index,
                name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                phone=frame_phone(station, index),
                address=f"{place}{rng.randint(1, 40)}幢{rng.randint(1, 4)}单元"
                f"{rng.randint(1, 18)}{rng.randint(1, 4):02d}室",
                age_band=choose(rng, SURVEY_AGE[residence]),
                sex="male" if rng.random() < SURVEY_P_MALE[residence] else "female",
                residence=residence,
                temperament=rng.gauss(0.0, 0.5),
            )
        )
    return tuple(people)
