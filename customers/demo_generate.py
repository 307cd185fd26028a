"""Realistic demo data for a retailer that lives on repeat customers, generated with numpy.

No Django here: functions take a numpy Generator and sizes and return pandas DataFrames, so the maths is
testable on its own and customers.demo only moves the frames into PostgreSQL with COPY.

The purchase process follows the BG/NBD story, so CLV models have real signal to find: each customer
buys at their own rate λ ~ Gamma(r, α) while alive and, after every purchase, drops out with their own
probability p ~ Beta(a, b). Seasonality thins the purchase stream (Double 11 and 618 peaks, a
November/December high, the dip in Chinese New Year week after the pre-holiday gift rush). Spend per
order depends on a per-customer price tier (Gamma-Gamma-like heterogeneity).
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

WINDOW_DAYS = 730  # orders over the last two years

# --- names -----------------------------------------------------------------------------------------

# fmt: off
# (surname, pinyin, weight): the common surnames with their surname readings (单 = shan, 曾 = zeng).
SURNAMES = [
    ("王", "wang", 7.1), ("李", "li", 7.0), ("张", "zhang", 6.7), ("刘", "liu", 5.4), ("陈", "chen", 4.5),
    ("杨", "yang", 3.1), ("黄", "huang", 2.2), ("赵", "zhao", 2.0), ("吴", "wu", 1.9),
    ("周", "zhou", 1.9), ("徐", "xu", 1.3), ("孙", "sun", 1.2), ("马", "ma", 1.2), ("朱", "zhu", 1.1),
    ("胡", "hu", 1.0), ("郭", "guo", 1.0), ("何", "he", 0.9), ("林", "lin", 0.9), ("高", "gao", 0.9),
    ("罗", "luo", 0.9), ("郑", "zheng", 0.8), ("梁", "liang", 0.8), ("谢", "xie", 0.7),
    ("宋", "song", 0.7), ("唐", "tang", 0.7), ("许", "xu", 0.6), ("邓", "deng", 0.6), ("冯", "feng", 0.6),
    ("韩", "han", 0.6), ("曹", "cao", 0.5), ("曾", "zeng", 0.5), ("彭", "peng", 0.5), ("萧", "xiao", 0.4),
    ("蔡", "cai", 0.4), ("潘", "pan", 0.4), ("田", "tian", 0.4), ("董", "dong", 0.4), ("袁", "yuan", 0.4),
    ("于", "yu", 0.4), ("余", "yu", 0.4), ("叶", "ye", 0.4), ("蒋", "jiang", 0.4), ("杜", "du", 0.3),
    ("苏", "su", 0.3), ("魏", "wei", 0.3), ("程", "cheng", 0.3), ("吕", "lv", 0.3), ("丁", "ding", 0.3),
    ("沈", "shen", 0.3), ("任", "ren", 0.3), ("单", "shan", 0.1), ("欧阳", "ouyang", 0.1),
    ("司马", "sima", 0.05),
]
# Given-name characters with their readings.
GIVEN = [
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀", "xiu"), ("霞", "xia"),
    ("平", "ping"), ("刚", "gang"), ("桂", "gui"), ("英", "ying"), ("华", "hua"), ("文", "wen"),
    ("辉", "hui"), ("建", "jian"), ("国", "guo"), ("小", "xiao"), ("玲", "ling"), ("婷", "ting"),
    ("雪", "xue"), ("慧", "hui"), ("鑫", "xin"), ("宇", "yu"), ("浩", "hao"), ("晨", "chen"),
    ("欣", "xin"), ("怡", "yi"), ("佳", "jia"), ("子", "zi"), ("梓", "zi"), ("涵", "han"), ("博", "bo"),
    ("轩", "xuan"), ("睿", "rui"), ("琳", "lin"), ("雅", "ya"), ("思", "si"), ("嘉", "jia"),
    ("晓", "xiao"), ("东", "dong"), ("海", "hai"), ("云", "yun"), ("志", "zhi"), ("鹏", "peng"),
    ("飞", "fei"), ("红", "hong"), ("梅", "mei"), ("兰", "lan"), ("凤", "feng"), ("春", "chun"),
    ("德", "de"), ("成", "cheng"), ("立", "li"), ("新", "xin"), ("安", "an"), ("宁", "ning"),
    ("悦", "yue"), ("然", "ran"), ("彤", "tong"), ("萱", "xuan"), ("诗", "shi"), ("雨", "yu"),
    ("泽", "ze"), ("阳", "yang"), ("凯", "kai"), ("俊", "jun"), ("丹", "dan"), ("倩", "qian"),
    ("颖", "ying"), ("瑶", "yao"), ("琪", "qi"), ("蕾", "lei"), ("峰", "feng"),
]
FIRST_NAMES = [
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Susan", "Richard", "Jessica", "Thomas", "Sarah", "Daniel", "Karen", "Matthew", "Emily",
    "Anthony", "Emma", "Mark", "Olivia", "Steven", "Sophia", "Andrew", "Grace", "Kevin", "Chloe", "Jason",
    "Hannah", "Ryan", "Lucy", "Eric", "Amy", "Jack", "Ella", "Oliver", "Mia",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis",
    "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Wong",
    "Chan", "Lee", "Tan", "Lim", "Ng",
]
COMPANY_WORDS = [
    ("华美", "huamei"), ("金辉", "jinhui"), ("东方", "dongfang"), ("恒信", "hengxin"),
    ("新天地", "xintiandi"), ("瑞丰", "ruifeng"), ("长城", "changcheng"), ("锦绣", "jinxiu"),
]
COMPANY_SUFFIXES = [
    ("贸易有限公司", "maoyiyouxiangongsi"), ("科技有限公司", "kejiyouxiangongsi"),
    ("餐饮管理有限公司", "canyinguanliyouxiangongsi"),
    ("文化传媒有限公司", "wenhuachuanmeiyouxiangongsi"),
]
# fmt: on

# --- places ----------------------------------------------------------------------------------------

# fmt: off
# (city, province, country, weight, region); region is one of cn, hk, tw, sg, west.
CITIES = [
    ("上海", "上海", "CN", 12, "cn"), ("北京", "北京", "CN", 11, "cn"), ("广州", "广东", "CN", 7, "cn"),
    ("深圳", "广东", "CN", 7, "cn"), ("杭州", "浙江", "CN", 6, "cn"), ("成都", "四川", "CN", 5, "cn"),
    ("武汉", "湖北", "CN", 4, "cn"), ("南京", "江苏", "CN", 4, "cn"), ("苏州", "江苏", "CN", 4, "cn"),
    ("西安", "陕西", "CN", 3, "cn"), ("重庆", "重庆", "CN", 4, "cn"), ("天津", "天津", "CN", 3, "cn"),
    ("长沙", "湖南", "CN", 2.5, "cn"), ("青岛", "山东", "CN", 2.5, "cn"), ("厦门", "福建", "CN", 2, "cn"),
    ("昆明", "云南", "CN", 1.5, "cn"), ("沈阳", "辽宁", "CN", 1.5, "cn"), ("郑州", "河南", "CN", 2, "cn"),
    ("合肥", "安徽", "CN", 1.5, "cn"), ("福州", "福建", "CN", 1.5, "cn"), ("宁波", "浙江", "CN", 2, "cn"),
    ("哈尔滨", "黑龙江", "CN", 1, "cn"), ("大连", "辽宁", "CN", 1, "cn"),
    ("济南", "山东", "CN", 1.2, "cn"), ("Hong Kong", "Hong Kong", "HK", 2.2, "hk"),
    ("Taipei", "Taiwan", "TW", 1.5, "tw"), ("Singapore", "Singapore", "SG", 1.5, "sg"),
    ("London", "England", "GB", 1, "west"), ("New York", "NY", "US", 1, "west"),
    ("Sydney", "NSW", "AU", 0.7, "west"), ("Toronto", "ON", "CA", 0.6, "west"),
]
STREETS = [
    "人民路", "中山路", "解放路", "建设路", "南京路", "长江路", "和平路", "淮海路", "滨江大道",
    "科技园路",
]
EMAIL_DOMAINS_CN = [
    "qq.com", "163.com", "126.com", "foxmail.com", "sina.com", "outlook.com", "gmail.com",
]
EMAIL_DOMAINS_INTL = [
    "gmail.com", "outlook.com", "yahoo.com", "icloud.com", "hotmail.com",
]
MOBILE_PREFIXES = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156",
    "157", "158", "159", "166", "176", "177", "180", "181", "182", "183", "185", "186", "187", "188",
    "189", "198", "199",
]
# fmt: on

# --- catalogue -------------------------------------------------------------------------------------

CATALOGUE = [
    ("TEA-001", "Longjing green tea 龙井绿茶 100g", "Tea 茶叶", 12800, 1),
    ("TEA-002", "Longjing green tea 龙井绿茶 250g (gift tin)", "Tea 茶叶", 36800, 2),
    ("TEA-003", "Tieguanyin oolong 铁观音 200g", "Tea 茶叶", 16800, 1),
    ("TEA-004", "Da Hong Pao 大红袍 150g", "Tea 茶叶", 29800, 2),
    ("TEA-005", "Aged Pu'er cake 陈年普洱饼 357g", "Tea 茶叶", 68800, 3),
    ("TEA-006", "Jasmine tea bags 茉莉花茶包 20 pcs", "Tea 茶叶", 3900, 0),
    ("TEA-007", "White peony 白牡丹 100g", "Tea 茶叶", 9800, 1),
    ("TEA-008", "Rare Jinjunmei 金骏眉 250g", "Tea 茶叶", 158000, 4),
    ("WARE-001", "Glass tea cup 玻璃茶杯", "Teaware 茶具", 4500, 0),
    ("WARE-002", "Yixing clay teapot 宜兴紫砂壶", "Teaware 茶具", 88000, 3),
    ("WARE-003", "Porcelain gaiwan 白瓷盖碗", "Teaware 茶具", 12800, 1),
    ("WARE-004", "Travel tea set 旅行茶具套装", "Teaware 茶具", 25800, 2),
    ("WARE-005", "Master-made Jianzhan bowl 大师建盏", "Teaware 茶具", 268000, 4),
    ("SNK-001", "Sesame crisps 芝麻脆片", "Snacks 零食", 1990, 0),
    ("SNK-002", "Osmanthus cake 桂花糕 6 pcs", "Snacks 零食", 3200, 0),
    ("SNK-003", "Dried mango 芒果干 500g", "Snacks 零食", 4590, 0),
    ("SNK-004", "Nut mix 每日坚果 30 bags", "Snacks 零食", 12900, 1),
    ("GIFT-001", "Mid-Autumn mooncake box 中秋月饼礼盒", "Gift sets 礼盒", 26800, 2),
    ("GIFT-002", "New Year tea gift box 新春茶礼盒", "Gift sets 礼盒", 49800, 3),
    ("GIFT-003", "Corporate gift hamper 企业礼品篮", "Gift sets 礼盒", 128000, 4),
    ("GIFT-004", "Tasting set 品鉴装", "Gift sets 礼盒", 8800, 1),
    ("SKIN-001", "Green tea face mask 绿茶面膜 10 pcs", "Skincare 护肤", 9900, 1),
    ("SKIN-002", "Camellia oil serum 山茶花精华", "Skincare 护肤", 32800, 2),
    ("SKIN-003", "Hand cream 护手霜", "Skincare 护肤", 5900, 0),
    ("HOME-001", "Bamboo tea tray 竹制茶盘", "Home 家居", 19800, 2),
    ("HOME-002", "Incense set 香道套装", "Home 家居", 15800, 1),
    ("HOME-003", "Rosewood tea table 红木茶桌", "Home 家居", 399000, 4),
    ("HOME-004", "Linen table runner 亚麻桌旗", "Home 家居", 6900, 0),
]
TIER_WEIGHTS = np.array([0.34, 0.34, 0.20, 0.10, 0.02])

# English names; customers/demo.py writes them in the company's language (DEMO_TAG_NAMES).
TAGS = [
    ("VIP", "warning"),
    ("Wholesale", "info"),
    ("WeChat friend", "success"),
    ("Newsletter", "primary"),
    ("Corporate", "dark"),
    ("Influencer", "danger"),
    ("Complained", "secondary"),
    ("Gift buyer", "info"),
]
CUSTOM_FIELDS = [
    # key, label, type, choices
    ("wechat_id", "WeChat ID", "text", []),
    (
        "preferred_store",
        "Preferred store",
        "choice",
        ["Flagship 旗舰店", "Mall 商场店", "Online 线上"],
    ),
    (
        "tea_preference",
        "Tea preference",
        "multi_choice",
        ["Green 绿茶", "Oolong 乌龙", "Black 红茶", "Pu'er 普洱", "White 白茶"],
    ),
    ("member_card", "Member card", "boolean", []),
]
# Chinese New Year's Day in the years the window covers.
NEW_YEAR_DAYS = [date(2024, 2, 10), date(2025, 1, 29), date(2026, 2, 17), date(2027, 2, 6), date(2028, 1, 26)]


@dataclass
class DemoFrames:
    customers: pd.DataFrame
    customer_tags: pd.DataFrame  # customer (row index), tag (index into TAGS)
    orders: pd.DataFrame
    lines: pd.DataFrame
    refunds: pd.DataFrame
    events: pd.DataFrame


# --- seasonality -----------------------------------------------------------------------------------


def seasonality(days: np.ndarray, start: date) -> np.ndarray:
    """Relative purchase intensity for each day offset from `start` (1.0 = an ordinary day)."""
    dates = pd.to_datetime(start) + pd.to_timedelta(np.floor(days), unit="D")
    month = dates.month.to_numpy()
    day = dates.day.to_numpy()
    factor = np.ones(len(days))
    factor[month == 12] = 1.35
    factor[month == 11] = 1.25
    factor[(month == 11) & (day <= 11)] = 1.9  # Double 11 (双11) pre-sales
    factor[(month == 11) & (day == 11)] = 5.0
    factor[(month == 6) & (day <= 18)] = 1.5  # 618
    factor[(month == 6) & (day == 18)] = 3.5
    factor[(month == 9) & (day >= 10)] = 1.2  # Mid-Autumn gifts
    ordinal = dates.to_numpy().astype("datetime64[D]")
    for new_year in NEW_YEAR_DAYS:
        ny = np.datetime64(new_year, "D")
        delta = (ordinal - ny).astype(int)
        factor[(delta >= -21) & (delta < -3)] *= 1.6  # gift rush before the holiday
        factor[(delta >= -3) & (delta <= 6)] *= 0.45  # shops and couriers rest
    return factor


# --- customers -------------------------------------------------------------------------------------


def _weighted(rng: np.random.Generator, weights, size: int) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    return rng.choice(len(weights), size=size, p=weights / weights.sum())


def _mobile_numbers(rng: np.random.Generator, size: int) -> np.ndarray:
    prefixes = np.array(MOBILE_PREFIXES)[rng.integers(0, len(MOBILE_PREFIXES), size)]
    tails = rng.integers(0, 10**8, size)
    return np.array([f"+86{p}{t:08d}" for p, t in zip(prefixes, tails, strict=True)], dtype=object)


def _overseas_number(rng: np.random.Generator, country: str) -> str:
    if country == "HK":
        return f"+852{rng.choice([5, 6, 9])}{rng.integers(0, 10**7):07d}"
    if country == "TW":
        return f"+8869{rng.integers(0, 10**8):08d}"
    if country == "SG":
        return f"+65{rng.choice([8, 9])}{rng.integers(0, 10**7):07d}"
    if country == "GB":
        return f"+447{rng.choice([4, 5, 7, 8, 9])}{rng.integers(0, 10**8):08d}"
    if country == "AU":
        return f"+614{rng.integers(0, 10**8):08d}"
    area = {"US": ["212", "415", "646", "718"], "CA": ["416", "647"]}[country]
    return f"+1{rng.choice(area)}{rng.integers(2, 10)}{rng.integers(0, 10**6):06d}"


def generate_customers(
    rng: np.random.Generator,
    n: int,
    *,
    now: datetime,
    owner_ids: list[int],
    manager_ids: list[int],
    phone_ok=None,
    to_traditional=None,
) -> pd.DataFrame:
    """n customers with names, contact data, demographics, owners, consents and custom fields.

    `phone_ok(e164) -> bool` validates overseas numbers (phonenumbers, injected to keep this module
    dependency-light); `to_traditional(text) -> str` converts names for Hong Kong / Taiwan customers.
    Columns match customers_customer plus `pinyin` helpers used for search_text."""
    city_idx = _weighted(rng, [c[3] for c in CITIES], n)
    cities = np.array([c[0] for c in CITIES], dtype=object)[city_idx]
    provinces = np.array([c[1] for c in CITIES], dtype=object)[city_idx]
    countries = np.array([c[2] for c in CITIES], dtype=object)[city_idx]
    regions = np.array([c[4] for c in CITIES], dtype=object)[city_idx]
    english_share = np.select(
        [regions == "cn", regions == "hk", regions == "tw", regions == "sg"], [0.03, 0.25, 0.1, 0.4], 0.85
    )
    english = rng.random(n) < english_share
    company = rng.random(n) < 0.04

    surname = _weighted(rng, [s[2] for s in SURNAMES], n)
    given_len = np.where(rng.random(n) < 0.25, 1, 2)
    g1 = rng.integers(0, len(GIVEN), n)
    g2 = rng.integers(0, len(GIVEN), n)
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    word = rng.integers(0, len(COMPANY_WORDS), n)
    suffix = rng.integers(0, len(COMPANY_SUFFIXES), n)
    traditional = np.isin(regions, ["hk", "tw"])

    pinyin_email = rng.random(n) < 0.6  # the rest use a QQ-style number
    names, simplified, spaced, joined, initials, email_local = [], [], [], [], [], []
    for i in range(n):
        if company[i]:
            city = cities[i] if regions[i] == "cn" else "上海"
            w, s = COMPANY_WORDS[word[i]], COMPANY_SUFFIXES[suffix[i]]
            from_pinyin = ""  # company names (few rows) get their pinyin from customers.search
            name = f"{city}{w[0]}{s[0]}"
            names.append(name)
            simplified.append(name)
            spaced.append(from_pinyin)
            joined.append(from_pinyin)
            initials.append(from_pinyin)
            email_local.append(f"info.{w[1]}{i}")
        elif english[i]:
            name = f"{FIRST_NAMES[first[i]]} {LAST_NAMES[last[i]]}"
            names.append(name)
            simplified.append(name)
            spaced.append("")
            joined.append("")
            initials.append("")
            email_local.append(f"{FIRST_NAMES[first[i]].lower()}.{LAST_NAMES[last[i]].lower()}{i}")
        else:
            s_char, s_py, _w = SURNAMES[surname[i]]
            chars = [GIVEN[g1[i]]] if given_len[i] == 1 else [GIVEN[g1[i]], GIVEN[g2[i]]]
            name = s_char + "".join(c[0] for c in chars)
            syllables = ([s_py] if len(s_char) == 1 else _split_compound(s_char, s_py)) + [
                c[1] for c in chars
            ]
            simplified.append(name)
            if traditional[i] and to_traditional is not None:
                name = to_traditional(name)
            names.append(name)
            spaced.append(" ".join(syllables))
            joined.append("".join(syllables))
            initials.append("".join(x[0] for x in syllables))
            email_local.append(f"{''.join(syllables)}{i}" if pinyin_email[i] else f"{100000 + i * 7}")
    names_arr = np.array(names, dtype=object)

    has_email = rng.random(n) < np.where(company, 0.95, 0.82)
    domains_cn = np.array(EMAIL_DOMAINS_CN, dtype=object)[rng.integers(0, len(EMAIL_DOMAINS_CN), n)]
    domains_intl = np.array(EMAIL_DOMAINS_INTL, dtype=object)[rng.integers(0, len(EMAIL_DOMAINS_INTL), n)]
    domains = np.where(regions == "cn", domains_cn, domains_intl)
    emails = np.where(
        has_email,
        np.array(
            [f"{local}@{domain}" for local, domain in zip(email_local, domains, strict=True)], dtype=object
        ),
        "",
    )

    phones = _mobile_numbers(rng, n)
    overseas = np.flatnonzero(countries != "CN")
    for country in sorted(set(countries[overseas])):  # sorted: the same seed gives the same data
        rows = overseas[countries[overseas] == country]
        # Validity depends on the leading digits: validate candidate numbers until 40 good ones are found,
        # then give each customer a good number's first digits with a fresh random tail.
        good = []
        for _attempt in range(400):
            number = _overseas_number(rng, country)
            if phone_ok is None or phone_ok(number):
                good.append(number)
                if len(good) >= 40:
                    break
        if not good:
            phones[rows] = ""
            continue
        heads = np.array([g[:-4] for g in good], dtype=object)[rng.integers(0, len(good), len(rows))]
        tails = rng.integers(0, 10**4, len(rows))
        phones[rows] = [f"{h}{t:04d}" for h, t in zip(heads, tails, strict=True)]
    phones = np.where(rng.random(n) < 0.93, phones, "")
    # Random tails can repeat; a phone belongs to one customer (duplicates are planted on purpose later).
    phones[pd.Series(phones).duplicated().to_numpy() & (phones != "")] = ""

    # A quarter joined in the year before the window; the rest over the two years, more of them lately.
    created_days = np.where(
        rng.random(n) < 0.25, -rng.uniform(0, 365, n), WINDOW_DAYS * rng.beta(1.25, 1.0, n) - 1
    )
    created_at = pd.Timestamp(now) - pd.to_timedelta(WINDOW_DAYS - created_days, unit="D")
    created_at = created_at + pd.to_timedelta(rng.integers(8 * 3600, 22 * 3600, n), unit="s")
    created_at = created_at.where(created_at < pd.Timestamp(now), pd.Timestamp(now) - pd.Timedelta(hours=1))

    age = np.clip(rng.normal(36, 11, n), 18, 80)
    birthday = pd.Timestamp(now).normalize() - pd.to_timedelta(age * 365.25, unit="D")
    birthday = pd.Series(birthday.date, dtype=object).where(~company & (rng.random(n) < 0.7), None)
    gender = np.where(
        company,
        "unknown",
        np.array(["female", "male", "unknown"], dtype=object)[_weighted(rng, [52, 44, 4], n)],
    )
    income = np.array(["low", "lower_middle", "middle", "upper_middle", "high", ""], dtype=object)[
        _weighted(rng, [8, 18, 30, 18, 8, 18], n)
    ]
    occupations = np.array(
        [
            "教师 Teacher",
            "工程师 Engineer",
            "设计师 Designer",
            "医生 Doctor",
            "会计 Accountant",
            "销售 Sales",
            "学生 Student",
            "自由职业 Freelancer",
            "经理 Manager",
            "公务员 Civil servant",
            "",
        ],
        dtype=object,
    )
    occupation = occupations[_weighted(rng, [8, 10, 6, 4, 6, 8, 7, 6, 9, 5, 31], n)]
    sources = np.array(
        ["website", "form", "store", "phone", "referral", "social", "import", "api"], dtype=object
    )
    source = sources[_weighted(rng, [24, 8, 30, 5, 10, 15, 6, 2], n)]

    roll = rng.random(n)
    owner = np.full(n, -1, dtype=np.int64)
    if owner_ids:
        owner = np.where(roll < 0.85, np.array(owner_ids)[rng.integers(0, len(owner_ids), n)], owner)
    if manager_ids:
        owner = np.where((roll >= 0.85) & (roll < 0.9), manager_ids[0], owner)

    email_consent = has_email & (rng.random(n) < 0.45)
    sms_consent = (phones != "") & (rng.random(n) < 0.55)
    external = np.where(
        rng.random(n) < 0.3, np.array([f"ERP-{100000 + i}" for i in range(n)], dtype=object), ""
    )
    street = np.where(
        (regions == "cn") & (rng.random(n) < 0.6),
        np.array(
            [
                f"{STREETS[k]}{num}号"
                for k, num in zip(rng.integers(0, len(STREETS), n), rng.integers(1, 999, n), strict=True)
            ],
            dtype=object,
        ),
        "",
    )
    postcode = np.where(
        street != "", np.array([f"{p:06d}" for p in rng.integers(100000, 850000, n)], dtype=object), ""
    )

    # Custom field values, built from JSON fragments (one json.dumps per choice, not per customer).
    stores = CUSTOM_FIELDS[1][3]
    teas = CUSTOM_FIELDS[2][3]
    cf_roll = rng.random((n, 4))
    store_json = [json.dumps(v, ensure_ascii=False) for v in stores]
    tea_json = [json.dumps(v, ensure_ascii=False) for v in teas]
    custom = []
    for i in range(n):
        parts = []
        if cf_roll[i, 0] < 0.35 and not english[i]:
            parts.append(f'"wechat_id": "wx_{joined[i] or "user"}{i % 997}"')
        if cf_roll[i, 1] < 0.5:
            parts.append(f'"preferred_store": {store_json[int(cf_roll[i, 1] * 6) % 3]}')
        if cf_roll[i, 2] < 0.4:
            first_tea = int(cf_roll[i, 2] * 25) % 5
            chosen = [tea_json[first_tea]] + ([tea_json[(first_tea + 2) % 5]] if cf_roll[i, 3] < 0.3 else [])
            parts.append(f'"tea_preference": [{", ".join(chosen)}]')
        if cf_roll[i, 3] < 0.6:
            parts.append(f'"member_card": {"true" if cf_roll[i, 3] < 0.35 else "false"}')
        custom.append("{" + ", ".join(parts) + "}")

    frame = pd.DataFrame(
        {
            "kind": np.where(company, "company", "person"),
            "name": names_arr,
            "simplified": np.array(simplified, dtype=object),
            "pinyin_spaced": np.array(spaced, dtype=object),
            "pinyin_joined": np.array(joined, dtype=object),
            "pinyin_initials": np.array(initials, dtype=object),
            "email": emails,
            "phone": phones,
            "country": countries,
            "province": provinces,
            "city": cities,
            "street": street,
            "postcode": postcode,
            "birthday": birthday.to_numpy(),
            "gender": gender,
            "income_band": income,
            "occupation": occupation,
            "source": source,
            "owner_index": owner,
            "email_consent": email_consent,
            "sms_consent": sms_consent,
            "external_id": external,
            "custom_fields": custom,
            "created_at": created_at,
            "english": english,
            "company": company,
        }
    )
    # Customers in sign-up order, so ids grow with time as they would in a real shop.
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True)


def _split_compound(surname: str, pinyin: str) -> list[str]:
    return {"欧阳": ["ou", "yang"], "司马": ["si", "ma"]}.get(surname, [pinyin])


def plant_duplicates(rng: np.random.Generator, customers: pd.DataFrame, share: float = 0.004) -> pd.DataFrame:
    """Make a few customers look like second records of others (same phone or email, a name variant):
    what store sign-ups plus online accounts produce, and what the duplicate finder should catch."""
    n = len(customers)
    k = int(n * share)
    if k == 0 or n < 4:
        return customers
    copies = rng.choice(n // 2, size=k, replace=False) * 2 + 1
    originals = copies - 1
    customers = customers.copy()
    same_phone = rng.random(k) < 0.5
    for copy_i, orig_i, by_phone in zip(copies, originals, same_phone, strict=True):
        for column in (
            "name",
            "simplified",
            "pinyin_spaced",
            "pinyin_joined",
            "pinyin_initials",
            "city",
            "province",
            "country",
            "english",
            "company",
            "kind",
        ):
            customers.at[copy_i, column] = customers.at[orig_i, column]
        if by_phone and customers.at[orig_i, "phone"]:
            customers.at[copy_i, "phone"] = customers.at[orig_i, "phone"]
        elif customers.at[orig_i, "email"]:
            customers.at[copy_i, "email"] = (
                customers.at[orig_i, "email"].upper()[:1] + customers.at[orig_i, "email"][1:]
            )
            customers.at[copy_i, "email"] = customers.at[copy_i, "email"].lower()
        customers.at[copy_i, "external_id"] = ""
    return customers


# --- orders ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseModel:
    """BG/NBD-style parameters (rates per day)."""

    r: float = 0.6
    alpha: float = 6.0  # mean rate r/alpha = 0.1 a day while alive, but most customers buy far less
    a: float = 1.0
    b: float = 6.0  # mean dropout after a purchase ≈ 0.14, with a long tail of loyal customers
    prospects: float = 0.12  # never bought
    max_rate: float = 0.35


def simulate_purchases(
    rng: np.random.Generator, created_days: np.ndarray, model: PurchaseModel = PurchaseModel(), *, start: date
) -> tuple[np.ndarray, np.ndarray]:
    """(customer index, day offset) of every purchase in [0, WINDOW_DAYS), sorted by customer and time.

    The first purchase comes soon after sign-up; later ones follow the customer's rate until dropout.
    Seasonality works through "operational time": gaps are exponential in cumulative seasonal intensity
    Λ(t) and mapped back with Λ⁻¹, which is exact for a day-by-day intensity and needs no rejection.
    """
    n = len(created_days)
    rate = np.minimum(rng.gamma(model.r, 1.0 / model.alpha, n), model.max_rate)
    dropout = rng.beta(model.a, model.b, n)
    intensity = seasonality(np.arange(WINDOW_DAYS, dtype=float), start)
    intensity = intensity / intensity.mean()
    grid = np.arange(WINDOW_DAYS + 1, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(intensity)])
    buyers = np.flatnonzero(rng.random(n) >= model.prospects)
    first = np.maximum(created_days[buyers], 0) + rng.exponential(6.0, len(buyers))
    inside = first < WINDOW_DAYS
    active, t = buyers[inside], first[inside]
    out_customer, out_day = [active], [t]
    while len(active):
        alive = rng.random(len(active)) >= dropout[active]
        active, t = active[alive], t[alive]
        operational = np.interp(t, grid, cumulative) + rng.exponential(1.0 / rate[active])
        keep = operational < cumulative[-1]
        active = active[keep]
        t = np.interp(operational[keep], cumulative, grid)
        out_customer.append(active)
        out_day.append(t)
    customer = np.concatenate(out_customer)
    day = np.concatenate(out_day)
    order = np.lexsort((day, customer))
    return customer[order], day[order]


def generate_orders(
    rng: np.random.Generator, customers: pd.DataFrame, *, now: datetime, currency: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Orders, lines and refunds. Money in cents (int64) to stay exact."""
    start = (pd.Timestamp(now) - pd.Timedelta(days=WINDOW_DAYS)).date()
    created_days = (epoch_seconds(customers["created_at"]) - now.timestamp()) / 86400 + WINDOW_DAYS
    customer, day = simulate_purchases(rng, created_days, start=start)
    # Orders in time order, so their ids and numbers grow with time as in a real shop (and the
    # unique index on the number is filled by appending).
    chronological = np.argsort(day, kind="stable")
    customer, day = customer[chronological], day[chronological]
    n_orders = len(customer)
    seconds = np.where(
        rng.random(n_orders) < 0.6, rng.normal(20.5, 1.8, n_orders), rng.normal(12.5, 2.0, n_orders)
    )
    seconds = np.clip(seconds, 7, 23.9) * 3600
    placed_at = (
        pd.Timestamp(start, tz=UTC)
        + pd.to_timedelta(np.floor(day), unit="D")
        + pd.to_timedelta(seconds - 8 * 3600, unit="s")
    )
    placed_at = placed_at.where(placed_at < pd.Timestamp(now), pd.Timestamp(now) - pd.Timedelta(minutes=5))

    # Each customer prefers a price tier; most lines come from it.
    n_customers = len(customers)
    tier_of_customer = _weighted(rng, TIER_WEIGHTS, n_customers)
    companies = customers["company"].to_numpy()
    tier_of_customer[companies] = np.maximum(tier_of_customer[companies], 2)
    lines_per_order = 1 + np.minimum(rng.poisson(0.7, n_orders), 4)
    line_order = np.repeat(np.arange(n_orders), lines_per_order)
    n_lines = len(line_order)
    tiers = np.array([p[4] for p in CATALOGUE])
    line_tier = np.where(
        rng.random(n_lines) < 0.7,
        tier_of_customer[customer[line_order]],
        _weighted(rng, TIER_WEIGHTS, n_lines),
    )
    by_tier = [np.flatnonzero(tiers == t) for t in range(5)]
    product = np.empty(n_lines, dtype=np.int64)
    for t in range(5):
        mask = line_tier == t
        product[mask] = by_tier[t][rng.integers(0, len(by_tier[t]), mask.sum())]
    quantity = np.array([1, 2, 3])[_weighted(rng, [75, 18, 7], n_lines)]
    quantity = np.where(companies[customer[line_order]], quantity * rng.integers(1, 4, n_lines), quantity)
    price = np.array([p[3] for p in CATALOGUE])[product]
    line_dates = placed_at[line_order]
    promo = ((line_dates.month == 11) & (line_dates.day <= 11)) | (
        (line_dates.month == 6) & (line_dates.day <= 18)
    )
    price = np.where(np.asarray(promo), np.round(price * 0.85 / 10) * 10, price).astype(np.int64)
    totals = np.bincount(line_order, weights=price * quantity, minlength=n_orders).astype(np.int64)

    roll = rng.random(n_orders)
    status = np.select(
        [roll < 0.01, roll < 0.05, roll < 0.09], ["cancelled", "refunded", "partially_refunded"], "paid"
    )
    refunded = np.where(status == "refunded", totals, 0)
    partial = status == "partially_refunded"
    refunded = np.where(
        partial, np.maximum(100, np.round(totals * rng.uniform(0.1, 0.6, n_orders) / 100) * 100), refunded
    )
    refunded = np.minimum(refunded, totals).astype(np.int64)
    status = np.where(partial & (refunded >= totals), "refunded", status)
    channel = np.array(["online", "store", "marketplace", "phone"], dtype=object)[
        _weighted(rng, [55, 30, 10, 5], n_orders)
    ]

    orders = pd.DataFrame(
        {
            "customer_index": customer,
            "placed_at": placed_at,
            "status": status,
            "channel": channel,
            "currency": currency,
            "total_cents": totals,
            "refunded_cents": refunded,
        }
    )
    catalogue = np.array(CATALOGUE, dtype=object)
    lines = pd.DataFrame(
        {
            "order_index": line_order,
            "sku": catalogue[product, 0],
            "product_name": catalogue[product, 1],
            "category": catalogue[product, 2],
            "quantity": quantity,
            "unit_price_cents": price,
        }
    )
    refund_idx = np.flatnonzero(refunded > 0)
    refund_at = placed_at[refund_idx] + pd.to_timedelta(rng.uniform(1, 20, len(refund_idx)), unit="D")
    refund_at = refund_at.where(refund_at < pd.Timestamp(now), pd.Timestamp(now) - pd.Timedelta(minutes=1))
    reasons = np.array(
        ["Damaged in transit 运输破损", "Wrong item 发错货", "Changed mind 不想要了", "Quality 质量问题", ""],
        dtype=object,
    )
    refunds = pd.DataFrame(
        {
            "order_index": refund_idx,
            "amount_cents": refunded[refund_idx],
            "reason": reasons[rng.integers(0, len(reasons), len(refund_idx))],
            "refunded_at": refund_at,
        }
    )
    return orders, lines, refunds


def generate_events(rng: np.random.Generator, customers: pd.DataFrame, *, now: datetime) -> pd.DataFrame:
    """3-10 behaviour events per customer, more of them recent."""
    n = len(customers)
    per_customer = rng.integers(3, 11, n)
    customer = np.repeat(np.arange(n), per_customer)
    m = len(customer)
    created = epoch_seconds(customers["created_at"])[customer]
    span = np.maximum(int(now.timestamp()) - created, 60)
    occurred = created + (span * (1 - rng.beta(1.0, 2.5, m) ** 0.7)).astype(np.int64)
    types = np.array(
        [
            "page_view",
            "product_view",
            "add_to_cart",
            "remove_from_cart",
            "checkout",
            "search",
            "email_open",
            "email_click",
            "login",
        ],
        dtype=object,
    )
    kind = types[_weighted(rng, [36, 24, 10, 2, 3, 8, 9, 3, 5], m)]
    skus = [p[0] for p in CATALOGUE]
    searches = ["龙井", "普洱", "gift box", "茶具", "oolong", "月饼", "紫砂壶", "面膜"]
    pages = ["/", "/shop", "/tea", "/teaware", "/gifts", "/about", "/members"]
    campaigns = ["spring-sale", "618", "double-11", "new-year", "mid-autumn", "welcome"]
    pick = rng.integers(0, 1_000_000, m)
    properties = []
    for k, p in zip(kind, pick, strict=True):
        if k in ("product_view", "add_to_cart", "remove_from_cart"):
            properties.append(f'{{"sku": "{skus[p % len(skus)]}"}}')
        elif k == "search":
            properties.append(json.dumps({"q": searches[p % len(searches)]}, ensure_ascii=False))
        elif k in ("email_open", "email_click"):
            properties.append(f'{{"campaign": "{campaigns[p % len(campaigns)]}"}}')
        elif k == "page_view":
            properties.append(f'{{"path": "{pages[p % len(pages)]}"}}')
        else:
            properties.append("{}")
    return pd.DataFrame(
        {
            "customer_index": customer,
            "event_type": kind,
            "occurred_at": pd.to_datetime(occurred, unit="s", utc=True),
            "properties": properties,
        }
    )


def generate_tags(rng: np.random.Generator, customers: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """Manual labels: VIP for the biggest spenders, corporate for companies, a sprinkle of others."""
    n = len(customers)
    spend = np.bincount(
        orders["customer_index"], weights=orders["total_cents"] - orders["refunded_cents"], minlength=n
    )
    rows = []
    vip = np.flatnonzero(spend >= np.quantile(spend, 0.97)) if n >= 30 else np.array([], dtype=int)
    rows += [(i, 0) for i in vip]
    rows += [(i, 4) for i in np.flatnonzero(customers["company"].to_numpy())]
    for tag in (1, 2, 3, 5, 6, 7):
        share = {1: 0.02, 2: 0.15, 3: 0.12, 5: 0.005, 6: 0.01, 7: 0.06}[tag]
        rows += [(i, tag) for i in np.flatnonzero(rng.random(n) < share)]
    frame = pd.DataFrame(rows, columns=["customer_index", "tag_index"]).astype("int64").drop_duplicates()
    return frame


def epoch_seconds(values) -> np.ndarray:
    """Seconds since 1970 for a datetime Series / Index (any resolution, UTC)."""
    delta = pd.DatetimeIndex(values).tz_convert(UTC) - pd.Timestamp(0, tz=UTC)
    return (delta // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)


def default_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def window_start(now: datetime) -> date:
    return (now - timedelta(days=WINDOW_DAYS)).date()
