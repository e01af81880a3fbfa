import unicodedata

import pytest

from pipeline.text.normalise import TextNormaliser, has_letters, mask_pii, normalise_text


def test_nfkc_turns_full_width_into_half_width():
    assert normalise_text("ＡＢＣ１２３，好") == "ABC123,好"


def test_traditional_becomes_simplified():
    assert normalise_text("服務態度很差，顧客等了很久") == "服务态度很差,顾客等了很久"


def test_html_tags_entities_and_urls_are_removed():
    text = "<p>房间&nbsp;很脏</p> 详情见 https://example.com/a?b=1 谢谢"
    assert normalise_text(text) == "房间 很脏 详情见 谢谢"


def test_ticket_template_noise_is_removed():
    text = "客户来电反映@~（时间）在（地址）办理业务******被多扣费@~请处理，谢谢"
    cleaned = normalise_text(text)
    assert "@~" not in cleaned and "*" not in cleaned
    assert "时间" not in cleaned and "地址" not in cleaned
    assert "被多扣费" in cleaned


def test_pii_is_masked_by_type():
    text = ("电话13812345678，座机010-87654321，身份证110101199003071234，"
            "卡号6222 0212 3456 7890 123，邮箱zhang.san@example.com")
    masked = mask_pii(text)
    for secret in ("13812345678", "87654321", "110101199003071234", "6222", "zhang.san"):
        assert secret not in masked
    for tag in ("[手机号]", "[电话]", "[身份证号]", "[银行卡号]", "[邮箱]"):
        assert tag in masked


def test_pii_masking_leaves_ordinary_numbers_alone():
    assert mask_pii("等了3个小时，花了580元，房间8012") == "等了3个小时,花了580元,房间8012"


def test_full_width_phone_numbers_are_masked_too():
    assert "[手机号]" in mask_pii("联系我：１３９１２３４５６７８")


def test_has_letters():
    assert has_letters("ok") and has_letters("差")
    assert not has_letters("？？？ 123 !!! 😡")


def test_normaliser_truncates_for_the_model():
    out = TextNormaliser(max_chars=50).fit(None).transform(["很" * 200])
    assert len(out[0]) == 50


@pytest.mark.parametrize("text,secret", [
    ("老身份证110101900307123还能用吗", "110101900307123"),
    ("回电138-1234-5678", "1234"),
    ("回电138 1234 5678", "1234"),
    ("请打+86 138 1234 5678", "1234"),
    ("请打+8613812345678", "12345678"),
    ("请打0086-138-1234-5678", "1234"),
    ("请打(+86)138.1234.5678", "1234"),
    ("我的QQ号：12345678", "12345678"),
    ("qq: 987654321 联系", "987654321"),
    ("QQ是 55667788", "55667788"),
    ("加我微信：zhang_san88", "zhang_san88"),
    ("微信号 Li-Si2026 随时找我", "Li-Si2026"),
    ("vx: abc12345", "abc12345"),
    ("wx：wangwu_001", "wangwu_001"),
    ("扣款卡号6222 0212 3456 7890 123", "123"),
    ("扣款卡号6222-0212-3456-7890", "7890"),
    ("卡6222021234567890", "6222021234567890"),
])
def test_each_form_of_personal_data_is_masked(text, secret):
    masked = mask_pii(text)
    assert secret not in masked, masked
    assert "[" in masked


@pytest.mark.parametrize("text", [
    "订单号：202611231234567 一直没发货",
    "订单号 110101900307123 查不到",
    "工单号20261123000123已经关闭",
    "运单号SF1234567890没有物流信息",
    "退款1380元还没到账，合计13800.00元",
    "2026-11-23 14:05下单，20261123付款，2026年11月23日到货",
    "QQ音乐会员自动续费",
    "微信支付失败三次",
    "下载了wx的app也没用",
])
def test_near_misses_stay_readable(text):
    assert mask_pii(text) == unicodedata.normalize("NFKC", text)
