"""Text clean-up: PII masking for storage, and full normalisation for the model.

``mask_pii`` is applied before a complaint's text is stored anywhere but its raw row.
``normalise_text`` = NFKC (full-width → half-width), HTML, URLs, ticket template noise, PII masks,
traditional → simplified (OpenCC), whitespace. Both are pure and deterministic.
"""
from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

import opencc
from sklearn.base import BaseEstimator, TransformerMixin

# Order matters: the longest digit runs are claimed first so that an ID number is not read as a phone.
_ID_18 = r"\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\dA-Za-z])"
_ID_15 = r"\d{8}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?![\dA-Za-z])"  # issued before 1999: YYMMDD
_PII_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("[邮箱]", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    ("[身份证号]", re.compile(rf"(?<!\d)(?:{_ID_18}|{_ID_15})")),
    ("[银行卡号]", re.compile(r"(?<!\d)(?:\d{4}[ -]?){3}\d{4}(?:[ -]?\d{1,3})?(?!\d)")),
    ("[手机号]", re.compile(r"(?<!\d)(?:(?:\+|00)?86[- ]?|\(\+?86\) ?)?1[3-9]\d[-. ]?\d{4}[-. ]?\d{4}(?!\d)")),
    ("[电话]", re.compile(r"(?<!\d)(?:\(?0\d{2,3}\)?[- ]?)\d{7,8}(?!\d)")),
    # QQ numbers and WeChat ids are only recognisable by their label: the label stays, the id goes
    ("[QQ号]", re.compile(r"(?P<label>QQ(?:号码?)?\s*(?:是|为)?\s*[:：]?\s*)[1-9]\d{4,10}(?!\d)", re.IGNORECASE)),
    ("[微信号]", re.compile(r"(?P<label>(?:微信|威信|weixin|wechat|(?<![A-Za-z])(?:vx|wx|v信))(?:号)?\s*(?:是|为)?\s*[:：]?\s*)"
                            r"[A-Za-z][-_A-Za-z0-9]{4,19}(?![-_A-Za-z0-9])", re.IGNORECASE)),
)
# Every pattern above needs a digit, an '@' or a WeChat label: a text with none of them is searched once, not
# seven times (most complaints)
_MAY_HOLD_PII = re.compile(r"[\d@]|微信|威信|weixin|wechat|vx|wx|v信", re.IGNORECASE)
# A digit run labelled as an order, waybill or work-order number is not personal data and stays readable.
_ORDER_LABEL = re.compile(r"(?:订单号?|单号|工单号?|运单号?|快递单号?|流水号|编号|发票号码?|合同号|批次号?)\s*(?:是|为)?\s*[:：#]?\s*$")

_HTML_TAG = re.compile(r"<[^<>]{0,200}>")
_URL = re.compile(r"(?:https?://|www\.)[^\s\u4e00-\u9fff，。！？；]+", re.IGNORECASE)
_MASKED_DIGITS = re.compile(r"[*＊xX]{3,}|(?<=\d)\*{2,}\d*")
_FIELD_SEPARATOR = re.compile(r"@~|~@|\|\|")
# Work-order template placeholders, e.g. （时间）, after NFKC: (时间)
_PLACEHOLDER = re.compile(r"[(\[【]\s*(?:时间|日期|地址|地点|号码|电话|姓名|金额|xx|XX|省|市|区|某某)\s*[)\]】]")
_WHITESPACE = re.compile(r"\s+")
# Control bytes (NUL …; tab and line breaks kept), zero-width, soft-hyphen, bidi and BOM characters are
# invisible: a phone number split by one still reads as one; PostgreSQL text columns also refuse NUL.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]")


def mask_pii(text: str) -> str:
    """Replace phone numbers (mobile in any spacing or prefix, landline), ID numbers (18 and 15 digits), bank
    cards, e-mail addresses, QQ numbers and WeChat ids with typed masks. Numbers labelled as order,
    waybill or work-order numbers stay."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    if not _MAY_HOLD_PII.search(text):
        return text
    for mask, pattern in _PII_PATTERNS:
        text = pattern.sub(lambda match, text=text, mask=mask: _masked(match, text, mask), text)
    return text


def _masked(match: re.Match, text: str, mask: str) -> str:
    if _ORDER_LABEL.search(text[max(0, match.start() - 12):match.start()]):
        return match.group()
    return (match.groupdict().get("label") or "") + mask


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def strip_markup_and_noise(text: str) -> str:
    text = html.unescape(_HTML_TAG.sub(" ", text))
    text = _URL.sub(" ", text)
    text = _FIELD_SEPARATOR.sub("；", text)
    text = _PLACEHOLDER.sub(" ", text)
    text = _MASKED_DIGITS.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def normalise_text(text: str, masked: str | None = None) -> str:
    """``masked``: ``mask_pii(text)`` when the caller has it already (the same as masking the unescaped text
    when the text holds no HTML entity: one masking per complaint saved)."""
    text = masked if masked is not None and "&" not in text else mask_pii(html.unescape(text))
    text = strip_markup_and_noise(text)
    return _t2s().convert(text)


def has_letters(text: str) -> bool:
    """True when the text holds at least one letter or CJK character (not only digits, punctuation, emoji)."""
    return any(unicodedata.category(ch).startswith("L") for ch in text)


class TextNormaliser(TransformerMixin, BaseEstimator):
    """First step of the model pipeline: raw complaint text → normalised text, truncated for the model."""

    def __init__(self, *, max_chars: int = 2000):
        self.max_chars = max_chars

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return [normalise_text(str(t))[: self.max_chars] for t in X]
