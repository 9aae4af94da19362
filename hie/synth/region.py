"""A region modelled on the bulletin in the project's seed (Nanjing, July 2019): its 12 districts
and 24 hospitals, whether each declared its tables, and how much of its required set it declared.

The bulletin's own catalog required 129 tables of districts and 83 of hospitals; the default catalog
here requires 20 and 53, so a declaration keeps the bulletin's share of its required set. Activity
weights follow the bulletin's visits and discharges, so a generated month looks like the real one
in shape, not in volume.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    code: str
    name: str
    kind: str  # district | hospital
    declared_share: float | None  # None: never declared (未反馈)
    outpatient_weight: float  # relative volume of outpatient visits
    inpatient_weight: float  # relative volume of discharges
    district: str | None = None


# Administrative division codes (GB/T 2260) for the districts; 江北新区 is a new area with no
# division code of its own, so it takes a code in the city's unassigned 3201xx range.
DISTRICTS = (
    Member("320114", "雨花台区", "district", 55 / 129, 116193, 289),
    Member("320102", "玄武区", "district", 54 / 129, 79081, 201),
    Member("320115", "江宁区", "district", 40 / 129, 165964, 7238),
    Member("320111", "浦口区", "district", 54 / 129, 42643, 82),
    Member("320116", "六合区", "district", 62 / 129, 0, 16),
    Member("320117", "溧水区", "district", 67 / 129, 52616, 7),
    Member("320106", "鼓楼区", "district", 74 / 129, 75540, 35),
    Member("320118", "高淳区", "district", 61 / 129, 0, 888),
    Member("320191", "江北新区", "district", 52 / 129, 117542, 0),
    Member("320113", "栖霞区", "district", 60 / 129, 6307, 8),
    Member("320104", "秦淮区", "district", 29 / 129, 0, 0),
    Member("320105", "建邺区", "district", 62 / 129, 78446, 144),
)

# Hospital codes are the platform's own registration numbers (synthetic, stable).
HOSPITALS = (
    Member("H320100001", "南京市妇幼保健院", "hospital", 67 / 83, 134900, 4186, "320104"),
    Member("H320100002", "南京鼓楼医院", "hospital", 58 / 83, 305193, 7635, "320106"),
    Member("H320100003", "江苏省中医院", "hospital", 26 / 83, 0, 7928, "320104"),
    Member("H320100004", "南京市儿童医院", "hospital", 70 / 83, 9378, 0, "320106"),
    Member("H320100005", "东南大学附属中大医院", "hospital", None, 0, 10192, "320106"),
    Member("H320100006", "南京市中心医院", "hospital", 41 / 83, 184, 431, "320102"),
    Member("H320100007", "南京医科大学第二附属医院", "hospital", None, 0, 4313, "320106"),
    Member("H320100008", "东部战区总医院", "hospital", 62 / 83, 21353, 7050, "320102"),
    Member("H320100009", "江苏省人民医院", "hospital", None, 252952, 16947, "320106"),
    Member("H320100010", "江苏省肿瘤医院", "hospital", None, 0, 3468, "320102"),
    Member("H320100011", "江苏省中西医结合医院", "hospital", 30 / 83, 0, 0, "320113"),
    Member("H320100012", "南京市中医院", "hospital", 66 / 83, 46555, 1711, "320104"),
    Member("H320100013", "南京脑科医院", "hospital", 74 / 83, 74658, 0, "320106"),
    Member("H320100014", "江苏省级机关医院", "hospital", None, 0, 949, "320106"),
    Member("H320100015", "南京市口腔医院", "hospital", 72 / 83, 89409, 437, "320104"),
    Member("H320100016", "南京市胸科医院", "hospital", 38 / 83, 1461, 1427, "320102"),
    Member("H320100017", "南医大眼科医院", "hospital", None, 13966, 944, "320106"),
    Member("H320100018", "南京市第二医院", "hospital", 33 / 83, 57057, 2750, "320102"),
    Member("H320100019", "南京市中西医结合医院", "hospital", 56 / 83, 69797, 1088, "320102"),
    Member("H320100020", "南京市职业病防治院", "hospital", 34 / 83, 0, 0, "320113"),
    Member("H320100021", "江苏省第二中医院", "hospital", 49 / 83, 18338, 194, "320105"),
    Member("H320100022", "南京市第一医院", "hospital", 35 / 83, 455, 0, "320104"),
    Member("H320100023", "南京市江北人民医院", "hospital", 49 / 83, 445, 2, "320191"),
    Member("H320100024", "江苏省口腔医院", "hospital", None, 0, 0, "320106"),
)

REGION = DISTRICTS + HOSPITALS
