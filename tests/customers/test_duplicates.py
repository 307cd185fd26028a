"""Finding likely duplicate customers: the signals, what is left out, visibility, speed, and the page."""

import random
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.audit.models import AuditEvent
from customers.dedupe.keys import city_key, name_key, name_keys, name_tokens
from customers.dedupe.scan import (
    EMAIL_SCORE,
    MAX_GROUP_SIZE,
    NAME_COMMON_SCORE,
    NAME_EXACT_SCORE,
    NAME_REORDERED_SCORE,
    PHONE_SCORE,
    duplicate_scan,
)
from customers.dedupe.selectors import duplicate_candidates
from customers.dedupe.services import duplicate_dismiss
from customers.models import Customer
from tests.factories import CustomerFactory


def _pairs(user):
    return {(p.first_id, p.second_id): p for p in duplicate_candidates(user=user, use_cache=False).pairs}


def _pair(a, b):
    return (min(a.pk, b.pk), max(a.pk, b.pk))


def _codes(pair):
    return {reason.code for reason in pair.reasons}


# --- normalisation ---------------------------------------------------------------------------------


def test_name_key_folds_traditional_simplified_pinyin_case_and_spaces():
    assert {name_key(n) for n in ("張偉", "张伟", "Zhang Wei", "zhangwei", "  ZHANG  wei ")} == {"zhangwei"}
    assert name_key("José Núñez") == "josenunez"
    assert name_key("王小明") != name_key("王晓红")


def test_names_of_chinese_characters_only_get_the_keys_of_their_words():
    # name_keys reads a name of Chinese characters only one character at a time (most names): the
    # result must be that of the general reading, word by word, traditional characters included.
    rng = random.Random(7)
    characters = "王李张刘陈杨黄赵欧阳司马許韓馮鄧偉麗丽伟㐀曾单𠀀"
    for _ in range(3000):
        name = "".join(rng.choice(characters) for _ in range(rng.randint(1, 4)))
        tokens = name_tokens(name)
        assert name_keys(name) == ("".join(tokens), "".join(sorted(tokens))), name


def test_city_key_matches_chinese_pinyin_and_suffix_forms():
    assert {city_key(c) for c in ("北京", "北京市", "Beijing", "beijing city")} == {"beijing"}
    assert city_key("臺北市") == city_key("台北")
    assert city_key("上海") != city_key("北京")


# --- signals ---------------------------------------------------------------------------------------


def test_same_email_with_case_and_whitespace_differences(tenant, manager_user):
    a = CustomerFactory(name="Ann Lee", email="Ann.Lee@Example.com", city="Shanghai")
    b = CustomerFactory(name="Annie Li", email=" ann.lee@example.COM ", city="Hangzhou")
    CustomerFactory(name="Other", email="ann.lee@example.org", city="Shanghai")
    pairs = _pairs(manager_user)
    assert _pair(a, b) in pairs
    assert pairs[_pair(a, b)].score == EMAIL_SCORE
    assert _codes(pairs[_pair(a, b)]) == {"email"}
    assert len(pairs) == 1


def test_same_phone_in_different_formats(tenant, manager_user):
    a = CustomerFactory(name="Bo Chen", phone="+8613800138000", city="Shanghai")
    b = CustomerFactory(name="Chen Bo Ltd", phone="138 0013 8000", city="Wuhan")
    c = CustomerFactory(name="Someone", phone="+86 138-0013-8000", city="Xi'an")
    CustomerFactory(name="Different", phone="+8613800138001", city="Shanghai")
    pairs = _pairs(manager_user)
    assert set(pairs) == {_pair(a, b), _pair(a, c), _pair(b, c)}
    assert all(pair.score == PHONE_SCORE and _codes(pair) == {"phone"} for pair in pairs.values())


def test_traditional_and_simplified_name_in_the_same_city(tenant, manager_user):
    a = CustomerFactory(name="歐陽思遠", city="北京")
    b = CustomerFactory(name="欧阳思远", city="北京市")
    pairs = _pairs(manager_user)
    assert set(pairs) == {_pair(a, b)}
    assert pairs[_pair(a, b)].score == NAME_EXACT_SCORE
    assert _codes(pairs[_pair(a, b)]) == {"name"}


def test_pinyin_name_matches_chinese_name_in_the_same_city(tenant, manager_user):
    a = CustomerFactory(name="Zhang Xinxuan", city="Beijing")
    b = CustomerFactory(name="张鑫轩", city="北京")
    c = CustomerFactory(name="Xin Xuan Zhang", city="beijing")
    pairs = _pairs(manager_user)
    assert pairs[_pair(a, b)].score == NAME_EXACT_SCORE
    assert pairs[_pair(a, c)].score == NAME_REORDERED_SCORE
    assert _codes(pairs[_pair(b, c)]) == {"name_reordered"}


def test_similar_spelling_in_the_same_city_scores_by_similarity(tenant, manager_user):
    a = CustomerFactory(name="Jonathan Smithson", city="London")
    b = CustomerFactory(name="Jonathon Smithson", city="London")
    CustomerFactory(name="Jonas Smart", city="London")
    CustomerFactory(name="张伟", city="London")
    CustomerFactory(name="张文", city="London")  # one different character: a different name
    pairs = _pairs(manager_user)
    assert set(pairs) == {_pair(a, b)}
    pair = pairs[_pair(a, b)]
    assert _codes(pair) == {"name_similar"}
    assert 0.6 <= pair.reasons[0].similarity < 1
    assert pair.score == round(90 * pair.reasons[0].similarity)


def test_a_latin_spelling_is_similar_to_a_chinese_name_whichever_key_sorts_first(tenant, manager_user):
    """The similarity join pairs a Latin key with a Chinese one whether the Chinese key sorts after
    the Latin one or before it, Latin keys with each other, and never two Chinese keys (张鑫轩 / 张欣娟:
    zhangxinxuan / zhangxinjuan, similarity 0.63, one different character: another person)."""
    chinese = CustomerFactory(name="张鑫轩", city="上海")  # zhangxinxuan
    before = CustomerFactory(name="Zhang Xinxuam", city="Shanghai")  # zhangxinxuam: sorts before it
    after = CustomerFactory(name="Zhang Xinxuen", city="Shanghai")  # zhangxinxuen: sorts after it
    CustomerFactory(name="张欣娟", city="上海")
    CustomerFactory(name="Zhang Xinxuen", city="Beijing")  # another city
    pairs = _pairs(manager_user)
    assert set(pairs) == {_pair(chinese, before), _pair(chinese, after), _pair(before, after)}
    assert all(_codes(pair) == {"name_similar"} for pair in pairs.values())


def test_names_differing_only_in_numbers_are_not_similar(tenant, manager_user):
    CustomerFactory(name="Customer 10000", city="Shanghai")
    CustomerFactory(name="Customer 10001", city="Shanghai")
    assert _pairs(manager_user) == {}


def test_same_name_in_different_cities_is_not_a_candidate(tenant, manager_user):
    CustomerFactory(name="张伟", city="北京")
    CustomerFactory(name="張偉", city="上海")
    CustomerFactory(name="Zhang Wei", city="Shenzhen")
    CustomerFactory(name="张伟", city="")
    assert _pairs(manager_user) == {}


def test_one_pair_with_several_reasons_scores_its_best(tenant, manager_user):
    a = CustomerFactory(name="李娜", email="lina@example.com", phone="+8613900139000", city="Chengdu")
    b = CustomerFactory(name="Li Na", email="LINA@example.com", phone="139 0013 9000", city="成都")
    pair = _pairs(manager_user)[_pair(a, b)]
    assert pair.score == EMAIL_SCORE
    assert _codes(pair) == {"email", "phone", "name_common"}  # 李娜: a common name


def test_word_order_is_meaningful_in_chinese_names(tenant, manager_user):
    """Issue 15: 李颖洋 / 杨丽颖 and 张鑫轩 / 张萱欣 read the same syllables in another order: different
    people, not "the same name, words in another order"."""
    CustomerFactory(name="李颖洋", city="上海")
    CustomerFactory(name="杨丽颖", city="上海")
    CustomerFactory(name="张鑫轩", city="上海")
    CustomerFactory(name="张萱欣", city="上海")
    assert _pairs(manager_user) == {}


def test_a_latin_spelling_may_still_put_the_surname_last(tenant, manager_user):
    a = CustomerFactory(name="张鑫轩", city="上海")
    b = CustomerFactory(name="Xinxuan Zhang", city="Shanghai")
    c = CustomerFactory(name="Xin Xuan Zhang", city="Shanghai")
    pairs = _pairs(manager_user)
    assert _codes(pairs[_pair(a, c)]) == {"name_reordered"}
    assert pairs[_pair(a, c)].score == NAME_REORDERED_SCORE
    assert _pair(a, b) not in pairs or pairs[_pair(a, b)].score < NAME_EXACT_SCORE


def test_common_names_in_the_same_city_do_not_score_90_alone(tenant, manager_user):
    """Issue 15: two 张伟 in 北京 are as likely two people as one; a name found in several cities
    likewise. Only an email or phone lifts such a pair to the top."""
    short = [CustomerFactory(name=name, city="北京") for name in ("张伟", "張偉", "Zhang Wei")]
    frequent = [CustomerFactory(name="王小明", city=city) for city in ("上海", "上海", "杭州", "广州")]
    rare = [CustomerFactory(name="欧阳思远", city="北京"), CustomerFactory(name="歐陽思遠", city="北京")]
    pairs = _pairs(manager_user)
    for a, b in [(short[0], short[1]), (short[0], short[2]), (frequent[0], frequent[1])]:
        assert pairs[_pair(a, b)].score == NAME_COMMON_SCORE < NAME_EXACT_SCORE
        assert _codes(pairs[_pair(a, b)]) == {"name_common"}
    assert pairs[_pair(*rare)].score == NAME_EXACT_SCORE
    same_phone = CustomerFactory(name="张伟", city="北京", phone="+8613900000001")
    CustomerFactory(name="张伟", city="北京", phone="+8613900000001")
    scores = [p.score for p in _pairs(manager_user).values() if same_phone.pk in (p.first_id, p.second_id)]
    assert max(scores) == PHONE_SCORE


def test_deleted_and_merged_customers_are_left_out(tenant, manager_user):
    alive = CustomerFactory(name="Alive", email="same@example.com")
    CustomerFactory(name="In the bin", email="same@example.com", deleted_at=timezone.now())
    CustomerFactory(name="Merged", email="same@example.com", deleted_at=timezone.now(), merged_into=alive)
    assert _pairs(manager_user) == {}


def test_placeholder_values_shared_by_many_are_skipped_and_counted(tenant, manager_user):
    for _ in range(MAX_GROUP_SIZE + 1):
        CustomerFactory(email="noemail@shop.test")
    scan = duplicate_candidates(user=manager_user, use_cache=False)
    assert scan.pairs == []
    assert scan.skipped_groups == 1


def test_dismissed_pair_is_no_longer_offered(tenant, manager_user):
    a = CustomerFactory(name="Dana", email="dana@example.com")
    b = CustomerFactory(name="Dana W", email="dana@example.com")
    duplicate_dismiss(actor=manager_user, first=a, second=b)
    assert _pairs(manager_user) == {}
    assert AuditEvent.objects.filter(action="customer.duplicate_dismissed").count() == 2


def test_sales_see_only_pairs_of_customers_they_can_see_both_of(
    tenant, sales_user, sales_user2, manager_user
):
    own = CustomerFactory(owner=sales_user, email="x@example.com")
    shared = CustomerFactory(owner=sales_user2, email="x@example.com", shared_with=[sales_user])
    other = CustomerFactory(owner=sales_user2, email="y@example.com")
    mine = CustomerFactory(owner=sales_user, email="y@example.com")
    assert set(_pairs(sales_user)) == {_pair(own, shared)}
    assert set(_pairs(manager_user)) == {_pair(own, shared), _pair(other, mine)}
    assert _pairs(sales_user2) == {}  # sees `shared` and `other`, which share nothing


def test_results_are_cached_until_a_customer_changes(tenant, manager_user):
    a = CustomerFactory(name="Eve", email="eve@example.com")
    b = CustomerFactory(name="Eva", email="eve2@example.com")
    assert duplicate_candidates(user=manager_user).pairs == []
    b.email = "EVE@example.com"
    b.save()
    assert [(p.first_id, p.second_id) for p in duplicate_candidates(user=manager_user).pairs] == [_pair(a, b)]


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏"
LATIN = ["James", "Mary", "John", "Linda", "Robert", "Susan", "Wei", "Ming", "Anna", "Peter", "Lucy"]
LATIN_SURNAMES = ["Smith", "Brown", "Wang", "Li", "Chen", "Taylor", "Wilson", "Lee", "Zhang", "Liu"]
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "Xi'an", "Suzhou", "London", "台北"]


@pytest.mark.slow
def test_finding_among_20000_customers_completes(tenant, manager_user):
    rng = random.Random(20)
    rows = []
    for i in range(20_000):
        if rng.random() < 0.7:
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        else:
            name = f"{rng.choice(LATIN)} {rng.choice(LATIN_SURNAMES)}"
        rows.append(
            Customer(
                name=name,
                email=f"c{i if rng.random() > 0.01 else i // 2}@example.com",
                phone=f"+86139{rng.randrange(10**8):08d}",
                city=rng.choice(CITIES),
            )
        )
    Customer.objects.bulk_create(rows, batch_size=5000)
    started = time.perf_counter()
    scan = duplicate_scan(Customer.objects.filter(deleted_at__isnull=True))
    elapsed = time.perf_counter() - started
    print(f"\nduplicates among 20,000 customers: {len(scan.pairs)} pairs in {elapsed:.2f} s")
    assert scan.customers_scanned == 20_000
    assert any(_codes(pair) >= {"email"} for pair in scan.pairs)
    assert any(_codes(pair) & {"name", "name_common"} for pair in scan.pairs)


# --- page ------------------------------------------------------------------------------------------


def test_duplicates_page_lists_pairs_with_score_and_reasons(tenant, manager_client):
    a = CustomerFactory(name="歐陽思遠", city="北京")
    b = CustomerFactory(name="欧阳思远", city="北京")
    response = manager_client.get(reverse("customers:duplicates"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "歐陽思遠" in body and "欧阳思远" in body and 'data-score="90"' in body
    assert (
        reverse("customers:merge", args=[a.pk, b.pk]) in body
        or reverse("customers:merge", args=[b.pk, a.pk]) in body
    )


def test_duplicates_page_query_count_does_not_grow_with_rows(
    tenant, manager_client, django_assert_num_queries
):
    for i in range(2):
        CustomerFactory(email=f"pair{i}@example.com")
        CustomerFactory(email=f"pair{i}@example.com")
    # incl. the bell and the alerts badge (last visit + count), cold cache
    with django_assert_num_queries(13):
        assert manager_client.get(reverse("customers:duplicates")).status_code == 200
    for i in range(2, 25):
        CustomerFactory(email=f"pair{i}@example.com")
        CustomerFactory(email=f"pair{i}@example.com")
    with django_assert_num_queries(10):  # 23 more pairs; one query fewer (cached by the first request)
        response = manager_client.get(reverse("customers:duplicates"))
    assert response.status_code == 200
    assert len(response.context["page_obj"].object_list) == 25


def test_sales_page_shows_only_their_pairs(tenant, client_for, sales_user, sales_user2):
    CustomerFactory(owner=sales_user, name="Mine One", email="m@example.com")
    CustomerFactory(owner=sales_user, name="Mine Two", email="m@example.com")
    CustomerFactory(owner=sales_user2, name="Theirs One", email="t@example.com")
    CustomerFactory(owner=sales_user2, name="Theirs Two", email="t@example.com")
    body = client_for(sales_user).get(reverse("customers:duplicates")).content.decode()
    assert "Mine One" in body and "Theirs One" not in body


def test_dismiss_from_the_page(tenant, manager_client):
    a = CustomerFactory(name="Fay", email="fay@example.com")
    b = CustomerFactory(name="Faye", email="fay@example.com")
    response = manager_client.post(reverse("customers:duplicate_dismiss", args=[a.pk, b.pk]))
    assert response.status_code == 302
    page = manager_client.get(reverse("customers:duplicates"))
    assert page.context["rows"] == []
    assert f'data-pair="{a.pk}-{b.pk}"' not in page.content.decode()


def test_anonymous_user_is_sent_to_login(tenant, anon_client):
    response = anon_client.get(reverse("customers:duplicates"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_customer_page_offers_merging_with_customers_sharing_email_or_phone(tenant, manager_client):
    customer = CustomerFactory(name="Gao Lin", email="gao@example.com", phone="+8613500135000")
    same_phone = CustomerFactory(name="高林", email="other@example.com", phone="+8613500135000")
    same_email = CustomerFactory(name="G. Lin", email="gao@example.com", phone="")
    CustomerFactory(name="Gone", email="gao@example.com", deleted_at=timezone.now())
    body = manager_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert 'data-panel="customers.duplicates"' in body
    for other in (same_phone, same_email):
        assert reverse("customers:merge", args=[customer.pk, other.pk]) in body
    assert body.count(reverse("customers:merge", args=[customer.pk, customer.pk + 3])) == 0
    assert f"{reverse('customers:duplicates')}?customer={customer.pk}" in body


def test_customer_page_has_no_duplicates_panel_without_matches(tenant, manager_client):
    customer = CustomerFactory(name="Unique")
    body = manager_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert 'data-panel="customers.duplicates"' not in body


def test_duplicates_of_one_customer_and_merge_partner_search(tenant, manager_client):
    a = CustomerFactory(name="Hu Jun", email="hj@example.com", city="Xi'an")
    b = CustomerFactory(name="Hu J.", email="hj@example.com", city="Xi'an")
    CustomerFactory(name="Other pair", email="op@example.com")
    CustomerFactory(name="Other pair 2", email="op@example.com")
    partner = CustomerFactory(name="Jun Hu Trading", email="trade@example.com")
    url = reverse("customers:duplicates")
    response = manager_client.get(url, {"customer": a.pk, "q": "trading"})
    assert [(row["first"].pk, row["second"].pk) for row in response.context["rows"]] == [(a.pk, b.pk)]
    assert [c.pk for c in response.context["partners"]] == [partner.pk]
    assert reverse("customers:merge", args=[a.pk, partner.pk]) in response.content.decode()


def test_the_scan_turns_the_cycle_collector_back_on_as_it_found_it(tenant, manager_user):
    import gc

    CustomerFactory(name="Ann Lee", email="ann@example.com")
    CustomerFactory(name="Ann Lee", email="ANN@example.com ")
    assert gc.isenabled()
    assert duplicate_scan(Customer.objects.filter(deleted_at__isnull=True)).total == 1
    assert gc.isenabled()
    gc.disable()
    try:
        duplicate_scan(Customer.objects.filter(deleted_at__isnull=True))
        assert not gc.isenabled()
    finally:
        gc.enable()
