"""Where the simulated public lives: real county codes of one province, stations, officers.

Bureau codes are the GB/T 2260 county-level codes of Zhejiang (浙江省, 33): every district
(市辖区), county (县) and county-level city (县级市) as of the 2021 boundary changes
(临平/钱塘 split from 余杭/江干, 龙港 from 苍南). A station is the bureau code plus three
digits and a beat the station plus two, as DOMAIN.md §2 prescribes; station and officer
numbering is invented (the real 派出所 lists are not public data in this form).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

AreaType = Literal["urban", "suburban", "rural"]
CountyType = Literal["district", "county", "city"]

# code -> (name, city). Order within the list is the code order of GB/T 2260.
ZHEJIANG: dict[str, tuple[str, str]] = {
    # 杭州市 3301
    "330102": ("上城区", "杭州市"),
    "330105": ("拱墅区", "杭州市"),
    "330106": ("西湖区", "杭州市"),
    "330108": ("滨江区", "杭州市"),
    "330109": ("萧山区", "杭州市"),
    "330110": ("余杭区", "杭州市"),
    "330111": ("富阳区", "杭州市"),
    "330112": ("临安区", "杭州市"),
    "330113": ("临平区", "杭州市"),
    "330114": ("钱塘区", "杭州市"),
    "330122": ("桐庐县", "杭州市"),
    "330127": ("淳安县", "杭州市"),
    "330182": ("建德市", "杭州市"),
    # 宁波市 3302
    "330203": ("海曙区", "宁波市"),
    "330205": ("江北区", "宁波市"),
    "330206": ("北仑区", "宁波市"),
    "330211": ("镇海区", "宁波市"),
    "330212": ("鄞州区", "宁波市"),
    "330213": ("奉化区", "宁波市"),
    "330225": ("象山县", "宁波市"),
    "330226": ("宁海县", "宁波市"),
    "330281": ("余姚市", "宁波市"),
    "330282": ("慈溪市", "宁波市"),
    # 温州市 3303
    "330302": ("鹿城区", "温州市"),
    "330303": ("龙湾区", "温州市"),
    "330304": ("瓯海区", "温州市"),
    "330305": ("洞头区", "温州市"),
    "330324": ("永嘉县", "温州市"),
    "330326": ("平阳县", "温州市"),
    "330327": ("苍南县", "温州市"),
    "330328": ("文成县", "温州市"),
    "330329": ("泰顺县", "温州市"),
    "330381": ("瑞安市", "温州市"),
    "330382": ("乐清市", "温州市"),
    "330383": ("龙港市", "温州市"),
    # 嘉兴市 3304
    "330402": ("南湖区", "嘉兴市"),
    "330411": ("秀洲区", "嘉兴市"),
    "330421": ("嘉善县", "嘉兴市"),
    "330424": ("海盐县", "嘉兴市"),
    "330481": ("海宁市", "嘉兴市"),
    "330482": ("平湖市", "嘉兴市"),
    "330483": ("桐乡市", "嘉兴市"),
    # 湖州市 3305
    "330502": ("吴兴区", "湖州市"),
    "330503": ("南浔区", "湖州市"),
    "330521": ("德清县", "湖州市"),
    "330522": ("长兴县", "湖州市"),
    "330523": ("安吉县", "湖州市"),
    # 绍兴市 3306
    "330602": ("越城区", "绍兴市"),
    "330603": ("柯桥区", "绍兴市"),
    "330604": ("上虞区", "绍兴市"),
    "330624": ("新昌县", "绍兴市"),
    "330681": ("诸暨市", "绍兴市"),
    "330683": ("嵊州市", "绍兴市"),
    # 金华市 3307
    "330702": ("婺城区", "金华市"),
    "330703": ("金东区", "金华市"),
    "330723": ("武义县", "金华市"),
    "330726": ("浦江县", "金华市"),
    "330727": ("磐安县", "金华市"),
    "330781": ("兰溪市", "金华市"),
    "330782": ("义乌市", "金华市"),
    "330783": ("东阳市", "金华市"),
    "330784": ("永康市", "金华市"),
    # 衢州市 3308
    "330802": ("柯城区", "衢州市"),
    "330803": ("衢江区", "衢州市"),
    "330822": ("常山县", "衢州市"),
    "330824": ("开化县", "衢州市"),
    "330825": ("龙游县", "衢州市"),
    "330881": ("江山市", "衢州市"),
    # 舟山市 3309
    "330902": ("定海区", "舟山市"),
    "330903": ("普陀区", "舟山市"),
    "330921": ("岱山县", "舟山市"),
    "330922": ("嵊泗县", "舟山市"),
    # 台州市 3310
    "331002": ("椒江区", "台州市"),
    "331003": ("黄岩区", "台州市"),
    "331004": ("路桥区", "台州市"),
    "331022": ("三门县", "台州市"),
    "331023": ("天台县", "台州市"),
    "331024": ("仙居县", "台州市"),
    "331081": ("温岭市", "台州市"),
    "331082": ("临海市", "台州市"),
    "331083": ("玉环市", "台州市"),
    # 丽水市 3311
    "331102": ("莲都区", "丽水市"),
    "331121": ("青田县", "丽水市"),
    "331122": ("缙云县", "丽水市"),
    "331123": ("遂昌县", "丽水市"),
    "331124": ("松阳县", "丽水市"),
    "331125": ("云和县", "丽水市"),
    "331126": ("庆元县", "丽水市"),
    "331127": ("景宁畲族自治县", "丽水市"),
    "331181": ("龙泉市", "丽水市"),
}

# `--bureaus N` takes the first N of this order: a district, a county-level city and a
# county come first, so even a small run mixes urban and rural bureaus; the rest follow in
# code order.
PREFERRED = (
    "330602",  # 越城区 (district)
    "330681",  # 诸暨市 (county-level city)
    "330624",  # 新昌县 (county)
    "330102",  # 上城区
    "330782",  # 义乌市
    "331127",  # 景宁畲族自治县
    "330212",  # 鄞州区
    "330381",  # 瑞安市
    "331023",  # 天台县
    "330502",  # 吴兴区
)
ORDER = PREFERRED + tuple(c for c in ZHEJIANG if c not in PREFERRED)


def county_type(code: str) -> CountyType:
    """GB/T 2260: last two digits 01-20 a district, 21-80 a county, 81-99 a city."""
    tail = int(code[4:])
    if tail <= 20:
        return "district"
    return "county" if tail <= 80 else "city"


# Share of a bureau's stations by area type: a city district is mostly built up, a
# mountain county mostly villages (DOMAIN.md §3.1: area type drives the arrival target).
AREA_MIX: dict[CountyType, tuple[float, float, float]] = {
    "district": (0.6, 0.3, 0.1),
    "city": (0.35, 0.35, 0.3),
    "county": (0.2, 0.3, 0.5),
}
AREAS: tuple[AreaType, ...] = ("urban", "suburban", "rural")

STATION_NAMES = {
    "urban": ("城关", "城东", "城西", "城南", "城北", "中心", "新城", "开发区"),
    "suburban": ("城郊", "东湖", "工业园", "高铁新城", "经济区", "滨江"),
    "rural": ("山区", "东乡", "西乡", "南镇", "北镇", "溪口", "岭下", "湖塘"),
}


@dataclass(frozen=True)
class Officer:
    officer_id: str
    rank: str  # community_officer, patrol_officer, station_leader, ...
    # How this officer comes across (态度): drawn once, drives satisfaction and complaints.
    attitude: float


@dataclass(frozen=True)
class Station:
    code: str
    name: str  # in full, with its bureau's: 越城区公安分局府山派出所
    area_type: AreaType
    # Station-level service quality: management, staffing, 作风. Drawn once per run.
    quality: float
    # How many residents the station serves, relative to an average station.
    size: float
    officers: tuple[Officer, ...]

    @property
    def bureau(self) -> str:
        return self.code[:6]

    @property
    def unit_name(self) -> str:
        """The name within its bureau, as the unit register keeps it: 府山派出所."""
        for prefix in ("公安分局", "公安局"):
            if prefix in self.name:
                return self.name.split(prefix, 1)[1]
        return self.name

    def beat(self, index: int) -> str:
        return f"{self.code}{index % 6 + 1:02d}"


@dataclass(frozen=True)
class Bureau:
    code: str
    name: str
    city: str
    stations: tuple[Station, ...]
    # The bureau's 督察 (supervision) staff and command-centre call takers.
    supervisors: tuple[str, ...] = field(default=())
    call_takers: tuple[str, ...] = field(default=())


def pick_bureaus(n: int, codes: list[str] | None = None) -> list[str]:
    if codes:
        unknown = [c for c in codes if c not in ZHEJIANG]
        if unknown:
            raise ValueError(f"not Zhejiang county-level codes: {', '.join(unknown)}")
        return codes
    if not 1 <= n <= len(ORDER):
        raise ValueError(f"--bureaus must be from 1 to {len(ORDER)} (Zhejiang's counties)")
    return list(ORDER[:n])


OFFICERS_PER_STATION = 10


def build_bureau(code: str, stations: int, seed: str) -> Bureau:
    """A bureau's stations and people, the same for the same seed whatever else runs."""
    rng = random.Random(f"{seed}:bureau:{code}")
    name, city = ZHEJIANG[code]
    mix = AREA_MIX[county_type(code)]
    # Stations are laid out from the centre outwards: the first ones are the town's.
    counts = [round(stations * share) for share in mix]
    while sum(counts) > stations:
        counts[counts.index(max(counts))] -= 1
    while sum(counts) < stations:
        counts[0 if sum(counts) == 0 else counts.index(min(counts))] += 1
    areas = [a for a, k in zip(AREAS, counts, strict=True) for _ in range(k)]
    # A bureau has a culture of its own; its stations vary around it.
    bureau_quality = rng.gauss(0.0, 0.2)
    built = []
    used: dict[str, int] = {}
    for i, area in enumerate(areas, start=1):
        code9 = f"{code}{i:03d}"
        names = STATION_NAMES[area]
        base = names[used.get(area, 0) % len(names)]
        used[area] = used.get(area, 0) + 1
        officers = tuple(
            Officer(
                officer_id=f"{code9}-{k:02d}",
                rank=(
                    "station_leader"
                    if k == 1
                    else "community_officer"
                    if k <= 4
                    else "patrol_officer"
                    if k <= 8
                    else "window_clerk"
                ),
                attitude=rng.gauss(0.0, 0.45),
            )
            for k in range(1, OFFICERS_PER_STATION + 1)
        )
        built.append(
            Station(
                code=code9,
                name=f"{name}公安分局{base}派出所"
                if county_type(code) == "district"
                else f"{name}公安局{base}派出所",
                area_type=area,
                quality=bureau_quality + rng.gauss(0.0, 0.3),
                size={"urban": 1.3, "suburban": 1.0, "rural": 0.6}[area] * rng.uniform(0.8, 1.2),
                officers=officers,
            )
        )
    return Bureau(
        code=code,
        name=name,
        city=city,
        stations=tuple(built),
        supervisors=tuple(f"{code}-dc-{k:02d}" for k in range(1, 4)),
        call_takers=tuple(f"{code}-cc-{k:02d}" for k in range(1, 7)),
    )
