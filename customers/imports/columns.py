"""What a file column can be imported into, and the mapping guessed from the header names.

A target key is a customer field ("name", "phone", ...), a custom field ("cf:<key>"), an order field
("order_number", "placed_at", ...) or an order line field ("sku", "product_name", ...). Headers are
matched in English and Chinese, by the targets' labels in every interface language, and custom
fields by key or label.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

CUSTOMER = "customer"
ORDER = "order"
LINE = "line"
CUSTOM_PREFIX = "cf:"


@dataclass(frozen=True)
class Target:
    key: str
    label: str | Promise
    group: str
    synonyms: tuple[str, ...] = ()


BUILTIN_TARGETS: tuple[Target, ...] = (
    Target("id", _("CRM ID"), CUSTOMER, ("crm id", "crmid", "crm_id", "crm编号", "系统编号")),
    Target(
        "external_id",
        _("External ID"),
        CUSTOMER,
        (
            "external id",
            "external_id",
            "customer id",
            "customer no",
            "customer number",
            "member id",
            "member no",
            "外部编号",
            "外部id",
            "客户编号",
            "客户id",
            "会员编号",
            "会员号",
            "会员卡号",
            "会员id",
        ),
    ),
    Target(
        "name",
        _("Name"),
        CUSTOMER,
        (
            "name",
            "full name",
            "customer name",
            "customer",
            "contact",
            "contact name",
            "姓名",
            "名字",
            "客户名称",
            "客户姓名",
            "客户名",
            "客户",
            "名称",
            "联系人",
            "会员姓名",
            "收货人",
        ),
    ),
    Target("kind", _("Kind"), CUSTOMER, ("kind", "customer type", "客户类型", "类型")),
    Target(
        "email",
        _("Email"),
        CUSTOMER,
        ("email", "e-mail", "email address", "mail", "邮箱", "电子邮件", "电子邮箱", "邮件", "邮箱地址"),
    ),
    Target(
        "phone",
        _("Phone"),
        CUSTOMER,
        (
            "phone",
            "mobile",
            "telephone",
            "tel",
            "phone number",
            "mobile phone",
            "mobile number",
            "cell",
            "手机",
            "手机号",
            "手机号码",
            "电话",
            "电话号码",
            "联系电话",
            "联系方式",
            "移动电话",
        ),
    ),
    Target("country", _("Country"), CUSTOMER, ("country", "country code", "国家", "国家代码")),
    Target(
        "province",
        _("Province/state"),
        CUSTOMER,
        ("province", "state", "region", "省份", "省", "州", "省份/州"),
    ),
    Target("city", _("City"), CUSTOMER, ("city", "town", "城市", "市", "所在城市")),
    Target(
        "street",
        _("Street"),
        CUSTOMER,
        ("street", "address", "street address", "地址", "街道", "详细地址", "街道地址", "收货地址"),
    ),
    Target(
        "postcode",
        _("Postcode"),
        CUSTOMER,
        ("postcode", "postal code", "zip", "zip code", "邮编", "邮政编码"),
    ),
    Target(
        "birthday",
        _("Birthday"),
        CUSTOMER,
        ("birthday", "birth date", "date of birth", "dob", "生日", "出生日期"),
    ),
    Target("gender", _("Gender"), CUSTOMER, ("gender", "sex", "性别")),
    Target("language", _("Language"), CUSTOMER, ("language", "lang", "语言", "语种", "沟通语言")),
    Target(
        "income_band", _("Income band"), CUSTOMER, ("income band", "income", "收入", "收入水平", "收入档次")
    ),
    Target("occupation", _("Occupation"), CUSTOMER, ("occupation", "job", "profession", "职业")),
    Target(
        "source",
        _("Source channel"),
        CUSTOMER,
        ("source", "source channel", "lead source", "来源", "来源渠道", "客户来源", "获客渠道"),
    ),
    Target(
        "owner",
        _("Owner"),
        CUSTOMER,
        ("owner", "owner email", "sales rep", "account owner", "负责人", "所属销售", "销售", "客户经理"),
    ),
    Target("tags", _("Tags"), CUSTOMER, ("tags", "tag", "labels", "标签", "客户标签")),
    Target(
        "email_consent",
        _("Email consent"),
        CUSTOMER,
        ("email consent", "email opt in", "email optin", "邮件订阅", "邮件营销同意", "同意邮件"),
    ),
    Target(
        "sms_consent",
        _("SMS consent"),
        CUSTOMER,
        ("sms consent", "sms opt in", "sms optin", "短信订阅", "短信营销同意", "同意短信"),
    ),
    Target(
        "order_number",
        _("Order number"),
        ORDER,
        ("order number", "order no", "order id", "order", "订单号", "订单编号", "订单id", "单号"),
    ),
    Target(
        "placed_at",
        _("Placed at"),
        ORDER,
        (
            "placed at",
            "order date",
            "order time",
            "date",
            "purchase date",
            "下单时间",
            "下单日期",
            "订单时间",
            "订单日期",
            "购买时间",
            "付款时间",
            "支付时间",
        ),
    ),
    Target("status", _("Order status"), ORDER, ("order status", "status", "订单状态", "状态")),
    Target(
        "channel",
        _("Order channel"),
        ORDER,
        ("channel", "sales channel", "order channel", "渠道", "销售渠道"),
    ),
    Target("currency", _("Currency"), ORDER, ("currency", "币种", "货币")),
    Target(
        "total",
        _("Order total"),
        ORDER,
        (
            "total",
            "order total",
            "amount",
            "total amount",
            "金额",
            "总额",
            "订单金额",
            "实付金额",
            "总金额",
            "订单总额",
            "实付款",
        ),
    ),
    Target(
        "sku", _("SKU"), LINE, ("sku", "product code", "item code", "商品编码", "货号", "sku编码", "商品编号")
    ),
    Target(
        "product_name",
        _("Product"),
        LINE,
        ("product", "product name", "item", "item name", "商品", "商品名称", "产品", "产品名称", "宝贝名称"),
    ),
    Target(
        "category", _("Category"), LINE, ("category", "product category", "类别", "品类", "分类", "商品分类")
    ),
    Target("quantity", _("Quantity"), LINE, ("quantity", "qty", "数量", "购买数量")),
    Target("unit_price", _("Unit price"), LINE, ("unit price", "price", "单价", "价格", "商品单价")),
)
BUILTIN_BY_KEY = {t.key: t for t in BUILTIN_TARGETS}
ORDER_KEYS = frozenset(t.key for t in BUILTIN_TARGETS if t.group == ORDER)
LINE_KEYS = frozenset(t.key for t in BUILTIN_TARGETS if t.group == LINE)

_HEADER_NOISE = re.compile(r"[\s_\-.:：/()（）*＊#]+")


def normalise_header(text: str) -> str:
    return _HEADER_NOISE.sub("", str(text)).lower()


def custom_target(definition) -> Target:
    return Target(f"{CUSTOM_PREFIX}{definition.key}", definition.label, CUSTOMER)


def all_targets(custom_fields) -> list[Target]:
    return list(BUILTIN_TARGETS) + [custom_target(d) for d in custom_fields]


def target_label(key: str, custom_fields) -> str:
    if key in BUILTIN_BY_KEY:
        return str(BUILTIN_BY_KEY[key].label)
    for definition in custom_fields:
        if key == f"{CUSTOM_PREFIX}{definition.key}":
            return definition.label
    return key


def _labels_in_every_language(label) -> set[str]:
    names = {str(label)}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            names.add(str(label))
    return names


def header_lookup(custom_fields) -> dict[str, str]:
    """Normalised header text -> target key. Custom field keys first (exact intent), then built-in
    names, then custom field labels (a label that repeats a built-in name does not override it)."""
    lookup: dict[str, str] = {}
    for definition in custom_fields:
        lookup.setdefault(normalise_header(definition.key), f"{CUSTOM_PREFIX}{definition.key}")
        lookup.setdefault(
            normalise_header(f"{CUSTOM_PREFIX}{definition.key}"), f"{CUSTOM_PREFIX}{definition.key}"
        )
    for target in BUILTIN_TARGETS:
        for name in (target.key, *target.synonyms, *_labels_in_every_language(target.label)):
            lookup.setdefault(normalise_header(name), target.key)
    for definition in custom_fields:
        lookup.setdefault(normalise_header(definition.label), f"{CUSTOM_PREFIX}{definition.key}")
    return lookup


def guess_mapping(headers: list[str], custom_fields) -> list[str]:
    """One target key (or "" for "do not import") per column; each target is used at most once."""
    lookup = header_lookup(custom_fields)
    used: set[str] = set()
    mapping: list[str] = []
    for header in headers:
        key = lookup.get(normalise_header(header), "")
        if key and key not in used:
            used.add(key)
            mapping.append(key)
        else:
            mapping.append("")
    return mapping
