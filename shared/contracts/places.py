"""Guangzhou's places as Kapok knows them: its 11 districts, their streets (街道) and towns
(镇), and the social-work station of each (广州's street-level stations: one per street or
town), by reference. A command's place must be one of these, not free text: a place typed in
is where an address gets written (a trial recorded `王小明 手机13800138000 天河路385号3栋1201` as a
street). An administrator adds what is missing with a file (``KAPOK_PLACES_FILE``, a JSON list
of ``{"district", "street", "station"}``) that every service reads at start.

Events keep the plain `Place`: history recorded before the catalogue still reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared.contracts.types import DISTRICTS_ZH


@dataclass(frozen=True, slots=True)
class Station:
    ref: str  # station:<slug>
    district: str
    street: str


# district -> (street or town, slug) for each; the slug names its station (station:<slug>).
_SHIPPED: dict[str, tuple[tuple[str, str], ...]] = {
    "yuexiu": (
        ("洪桥街", "hongqiao"), ("北京街", "beijing-road"), ("六榕街", "liurong"),
        ("流花街", "liuhua"), ("光塔街", "guangta"), ("人民街", "renmin"), ("东山街", "dongshan"),
        ("农林街", "nonglin"), ("梅花村街", "meihuacun"), ("黄花岗街", "huanghuagang"),
        ("华乐街", "huale"), ("建设街", "jianshe"), ("大塘街", "datang"), ("珠光街", "zhuguang"),
        ("大东街", "dadong"), ("白云街", "yuexiu-baiyun"), ("登峰街", "dengfeng"),
        ("矿泉街", "kuangquan"),
    ),
    "haizhu": (
        ("赤岗街", "chigang"), ("新港街", "xingang"), ("昌岗街", "changgang"),
        ("江南中街", "jiangnanzhong"), ("滨江街", "binjiang"), ("素社街", "sushe"),
        ("海幢街", "haichuang"), ("南华西街", "nanhuaxi"), ("龙凤街", "longfeng"),
        ("沙园街", "shayuan"), ("南石头街", "nanshitou"), ("凤阳街", "fengyang"),
        ("瑞宝街", "ruibao"), ("江海街", "jianghai"), ("琶洲街", "pazhou"), ("南洲街", "nanzhou"),
        ("华洲街", "huazhou"), ("官洲街", "guanzhou"),
    ),
    "liwan": (
        ("沙面街", "shamian"), ("岭南街", "lingnan"), ("华林街", "hualin"), ("多宝街", "duobao"),
        ("昌华街", "changhua"), ("逢源街", "fengyuan"), ("龙津街", "longjin"), ("金花街", "jinhua"),
        ("彩虹街", "caihong"), ("南源街", "nanyuan"), ("西村街", "xicun"), ("站前街", "zhanqian"),
        ("桥中街", "qiaozhong"), ("白鹤洞街", "baihedong"), ("冲口街", "chongkou"),
        ("花地街", "huadi"), ("石围塘街", "shiweitang"), ("茶滘街", "chajiao"),
        ("东漖街", "dongjiao"), ("海龙街", "hailong"), ("东沙街", "dongsha"),
        ("中南街", "zhongnan"),
    ),
    "tianhe": (
        ("五山街", "wushan"), ("员村街", "yuancun"), ("车陂街", "chebei"), ("沙河街", "shahe"),
        ("石牌街", "shipai"), ("沙东街", "shadong"), ("天河南街", "tianhenan"), ("林和街", "linhe"),
        ("兴华街", "xinghua"), ("棠下街", "tangxia"), ("天园街", "tianyuan"), ("猎德街", "liede"),
        ("冼村街", "xiancun-tianhe"), ("元岗街", "yuangang"), ("黄村街", "huangcun"),
        ("龙洞街", "longdong"), ("长兴街", "changxing"), ("凤凰街", "fenghuang"),
        ("前进街", "qianjin"), ("珠吉街", "zhuji"), ("新塘街", "xintang-tianhe"),
    ),
    "baiyun": (
        ("三元里街", "sanyuanli"), ("松洲街", "songzhou"), ("景泰街", "jingtai"),
        ("同德街", "tongde"), ("黄石街", "huangshi"), ("棠景街", "tangjing"), ("新市街", "xinshi"),
        ("同和街", "tonghe"), ("京溪街", "jingxi"), ("永平街", "yongping"), ("金沙街", "jinsha"),
        ("石井街", "shijing"), ("嘉禾街", "jiahe"), ("均禾街", "junhe"), ("鹤龙街", "helong"),
        ("白云湖街", "baiyunhu"), ("石门街", "shimen"), ("云城街", "yuncheng"),
        ("龙归街", "longgui"), ("大源街", "dayuan"), ("人和镇", "renhe"), ("太和镇", "taihe"),
        ("钟落潭镇", "zhongluotan"), ("江高镇", "jianggao"),
    ),
    "huangpu": (
        ("黄埔街", "huangpu"), ("红山街", "hongshan"), ("鱼珠街", "yuzhu"), ("大沙街", "dasha"),
        ("文冲街", "wenchong"), ("穗东街", "suidong"), ("南岗街", "nangang"),
        ("长洲街", "changzhou"), ("夏港街", "xiagang"), ("萝岗街", "luogang"),
        ("联和街", "lianhe"), ("永和街", "yonghe"), ("东区街", "dongqu"), ("云埔街", "yunpu"),
        ("长岭街", "changling"), ("九佛街", "jiufo"), ("龙湖街", "longhu"), ("新龙镇", "xinlong"),
    ),
    "panyu": (
        ("市桥街", "shiqiao"), ("沙头街", "shatou"), ("东环街", "donghuan"), ("桥南街", "qiaonan"),
        ("小谷围街", "xiaoguwei"), ("大石街", "dashi"), ("洛浦街", "luopu"), ("石壁街", "shibi"),
        ("钟村街", "zhongcun"), ("大龙街", "dalong"), ("沙湾街", "shawan"), ("南村镇", "nancun"),
        ("新造镇", "xinzao"), ("化龙镇", "hualong"), ("石楼镇", "shilou"), ("石碁镇", "shiqi"),
    ),
    "huadu": (
        ("新华街", "xinhua"), ("新雅街", "xinya"), ("秀全街", "xiuquan"), ("花城街", "huacheng"),
        ("花东镇", "huadong"), ("花山镇", "huashan"), ("炭步镇", "tanbu"), ("赤坭镇", "chini"),
        ("狮岭镇", "shiling"), ("梯面镇", "timian"),
    ),
    "nansha": (
        ("南沙街", "nansha"), ("珠江街", "zhujiang"), ("龙穴街", "longxue"),
        ("万顷沙镇", "wanqingsha"), ("横沥镇", "hengli"), ("黄阁镇", "huangge"),
        ("东涌镇", "dongchong"), ("大岗镇", "dagang"), ("榄核镇", "lanhe"),
    ),
    "conghua": (
        ("街口街", "jiekou"), ("江埔街", "jiangpu"), ("城郊街", "chengjiao"),
        ("温泉镇", "wenquan"), ("良口镇", "liangkou"), ("吕田镇", "lvtian"),
        ("太平镇", "taiping"), ("鳌头镇", "aotou"),
    ),
    "zengcheng": (
        ("荔城街", "licheng"), ("增江街", "zengjiang"), ("朱村街", "zhucun"),
        ("永宁街", "yongning"), ("荔湖街", "lihu"), ("宁西街", "ningxi"), ("新塘镇", "xintang"),
        ("石滩镇", "shitan"), ("中新镇", "zhongxin"), ("正果镇", "zhengguo"),
        ("派潭镇", "paitan"), ("小楼镇", "xiaolou"), ("仙村镇", "xiancun"),
    ),
}  # fmt: skip

STATIONS: dict[str, Station] = {}


def add(station: Station) -> None:
    if station.district not in DISTRICTS_ZH:
        raise ValueError(f"{station.ref}: {station.district!r} is not one of Guangzhou's districts")
    known = STATIONS.get(station.ref)
    if known is not None and known != station:
        raise ValueError(f"{station.ref} is already {known.street}, {known.district}")
    STATIONS[station.ref] = station


for _district, _streets in _SHIPPED.items():
    for _street, _slug in _streets:
        add(Station(f"station:{_slug}", _district, _street))


def extend_from(path: Path) -> int:
    """An administrator's additions (``KAPOK_PLACES_FILE``): how many stations it named."""
    entries = json.loads(path.read_text())
    for entry in entries:
        add(Station(entry["station"], entry["district"], entry["street"]))
    return len(entries)


def streets(district: str) -> set[str]:
    return {s.street for s in STATIONS.values() if s.district == district}


def stations_in(district: str) -> list[Station]:
    return sorted((s for s in STATIONS.values() if s.district == district), key=lambda s: s.ref)


def refusal(district: str, street: str, station: str) -> str | None:
    """Why a place is not in the catalogue, or None."""
    if street not in streets(district):
        return f"street: {street!r} is no street or town of {district} in Kapok's catalogue"
    known = STATIONS.get(station)
    if known is None:
        return f"station: {station} is not in Kapok's catalogue (KAPOK_PLACES_FILE adds one)"
    if (known.district, known.street) != (district, street):
        return f"station: {station} is the station of {known.street}, {known.district}"
    return None
