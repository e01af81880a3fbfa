"""The trend report: self-contained HTML checked in a real headless chromium, the Excel workbook, the
markdown summary, the `complaints trends` command, and the nightly flow's report and Prefect artifacts."""
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from pipeline.storage import store
from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.reporting.charts import CAUSE_COLOURS
from pipeline.reporting.report import build_report, write_report_files
from trend_data import synthetic_rows, write_to_store

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]
HOSTILE_ID = "HOSTILE"
HOSTILE_TEXT = '=1+2 <script>console.error("injected")</script><img src=x onerror="console.error(1)"> 电脑死机'
HOSTILE_CHANNEL = "<i>kiosk</i>"


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    """A real store: 18 whole weeks at ~60 complaints a day, technology tripled in the app for the last two
    weeks, and one complaint whose text and channel are hostile HTML."""
    work = tmp_path_factory.mktemp("trend-report")
    rows = synthetic_rows(seed=21, days=126, per_day=60,
                          spike={"channel": "app", "cause": "technology", "factor": 3.0, "last_days": 14})
    last = rows["at"].idxmax()
    hostile = rows.loc[[last]].assign(complaint_id=HOSTILE_ID, cause="technology", confidence=1.0,
                                      needs_review=False, channel=HOSTILE_CHANNEL)
    rows = pd.concat([rows, hostile], ignore_index=True)
    engine = store.connect(load_settings(work_dir=work).resolved_database_url)
    write_to_store(engine, rows, texts={HOSTILE_ID: HOSTILE_TEXT})
    engine.dispose()
    return work


@pytest.fixture(scope="module")
def report_files(work_dir):
    settings = load_settings(work_dir=work_dir)
    engine = store.connect(settings.resolved_database_url)
    report = build_report(engine, settings)
    engine.dispose()
    return report, write_report_files(report, work_dir / "reports", "trends-test")


@pytest.mark.slow
def test_html_is_self_contained_and_escapes_complaint_text(report_files):
    report, paths = report_files
    page = paths["html"].read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()
    assert "<img" not in page and "default-src 'none'" in page
    assert "&lt;script&gt;console.error(&#34;injected&#34;)&lt;/script&gt;" in page  # markupsafe's spelling of "
    assert "&lt;i&gt;kiosk&lt;/i&gt;" in page and HOSTILE_CHANNEL not in page
    assert page.count("<svg") >= 2 + len(report.trends.causes)  # shares, change, heatmap, one panel per cause
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"zh-CN\">")  # Chinese first
    alert = page.split('<div class="alert-card">')[1].split("</div></div>")[0] + "</div>"
    assert "技术 · 渠道「app」" in alert  # the planted spike, said plainly: which cause, where,
    assert "按此前 8 周的水平预计约" in alert and "倍" in alert and "那一周起" in alert  # how much, since when,
    assert alert.count('<div class="quote">') == 2  # with complaints to read,
    assert "<details><summary>统计依据</summary>" in alert and "p / q (count)" in alert  # statistics one click away
    mix, backlog = page.split('id="mix"')[1].split('id="causes"')[0], page.split('id="backlog"')[1]
    assert CAUSE_COLOURS["none"] not in mix and CAUSE_COLOURS["none"] in backlog  # 'none' is the backlog, no cause


def _chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=180)


def _console_messages(stderr: str) -> list[str]:
    """Every console message chromium logged (the report has no script, so any message is a fault:
    an error, an uncaught exception, or a request the Content-Security-Policy refused)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed; `make test` installs it "
                                             "(apt-get install chromium)")
def test_the_report_renders_in_headless_chromium(report_files, tmp_path):
    from PIL import Image

    # the console check catches errors: a page that logs one and throws is caught
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><p>x</p><script>console.error("control"); missing();</script>', encoding="utf-8")
    assert len(_console_messages(_chromium(tmp_path, control.as_uri(), "--dump-dom").stderr)) == 2

    report, paths = report_files
    screenshot = tmp_path / "report.png"
    shot = _chromium(tmp_path, paths["html"].as_uri(), "--window-size=1200,2600", f"--screenshot={screenshot}")
    assert screenshot.exists(), shot.stderr[-2000:]
    assert _console_messages(shot.stderr) == []

    image = Image.open(screenshot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # charts and text, not a blank page
    pixels_by_colour = {colour: count for count, colour in colours}
    for cause in report.trends.causes:  # each cause's bars are drawn in its own colour
        rgb = tuple(int(CAUSE_COLOURS[cause][i:i + 2], 16) for i in (1, 3, 5))
        assert pixels_by_colour.get(rgb, 0) > 500, cause
    white = pixels_by_colour.get((255, 255, 255), 0)
    assert white < 0.9 * image.width * image.height

    dom = _chromium(tmp_path, paths["html"].as_uri(), "--dump-dom")
    assert _console_messages(dom.stderr) == []
    assert '&lt;script&gt;console.error("injected")&lt;/script&gt;' in dom.stdout  # shown as text …
    assert "<script" not in dom.stdout and "<img" not in dom.stdout  # … never parsed as markup


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed; `make test` installs it")
def test_chinese_is_drawn_by_a_simplified_chinese_font_not_as_empty_boxes(report_files, tmp_path):
    """Without a CJK font a bare server draws every Chinese character as an empty box. Chromium's PDF of the
    report names the fonts it drew with: one must be a Simplified-Chinese CJK face (Noto Sans CJK SC from
    fonts-noto-cjk, first in the report's font stack), none the Japanese one that fallback picks for Han."""
    _, paths = report_files
    pdf = tmp_path / "report.pdf"
    run = _chromium(tmp_path, paths["html"].as_uri(), "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    assert pdf.exists(), run.stderr[-2000:]
    fonts = {name.decode() for name in re.findall(rb"/FontName /[A-Z]{6}\+([\w-]+)", pdf.read_bytes())}
    assert any("CJKsc" in name for name in fonts), (
        f"the report's Chinese was drawn with {sorted(fonts)}: install fonts-noto-cjk (`make test` does)")
    assert not any("CJKjp" in name for name in fonts)


def test_workbook_holds_the_same_tables_and_keeps_text_as_text(report_files):
    report, paths = report_files
    workbook = load_workbook(paths["xlsx"], read_only=True)
    assert {"summary", "alerts", "counts", "tests", "channel x cause", "terms", "examples", "method"} <= set(
        workbook.sheetnames)
    counts = pd.read_excel(paths["xlsx"], sheet_name="counts")
    assert len(counts) == len(report.trends.counts) and counts["count"].sum() == report.trends.counts["count"].sum()
    alerts = pd.read_excel(paths["xlsx"], sheet_name="alerts")
    assert ("technology", "channel = app") in set(zip(alerts["cause"], alerts["where"]))
    examples = workbook["examples"]
    header = [cell.value for cell in next(examples.iter_rows(max_row=1))]
    text_column = header.index("text_masked")
    hostile = [row[text_column] for row in examples.iter_rows(min_row=2) if row[header.index("complaint_id")].value == HOSTILE_ID]
    assert hostile[0].data_type == "s" and hostile[0].value == HOSTILE_TEXT  # "=1+2…" is not a formula


def test_markdown_summary_lists_the_alert_and_the_method(report_files):
    report, paths = report_files
    summary = paths["md"].read_text(encoding="utf-8")
    assert summary.startswith("# 投诉原因与补救 — ")
    alert_lines = [line for line in summary.splitlines() if line.startswith("- **技术 · 渠道「app」**：本周 ")]
    assert len(alert_lines) == 1 and "例：" in alert_lines[0]
    assert "Benjamini–Hochberg" in summary and f"少于 {report.trends.rule.min_count} 条不预警" in summary
    shares = summary.split("## 原因构成")[1].split("##")[0]
    assert "| 技术 |" in shares and "█" in shares and "非投诉" not in shares.split("\n\n")[2]  # bars of the causes


@pytest.mark.slow
def test_the_report_in_english(work_dir, tmp_path):
    output = tmp_path / "en.md"
    result = _complaints("trends", "--work-dir", str(work_dir), "--lang", "en", "--output", str(output))
    assert result.returncode == 0, result.stderr
    summary = output.read_text(encoding="utf-8")
    assert summary.startswith("# Complaint causes and recovery — week of ")
    assert "- **technology · channel app**: " in summary and "where its previous 8 weeks would lead to expect" in summary


def test_an_alert_is_said_by_the_test_that_passed():
    """The cause kept its count (30 a week) while the other complaints fell away: its share doubled. The
    alert speaks of the share, never of a count 'below expectation'."""
    from pipeline.reporting.tables import alert_sentence
    from pipeline.reporting.language import language
    from pipeline.reporting.trends import Window, build_trends

    start, rows = pd.Timestamp("2026-10-05"), []
    for week, (personnel, other) in enumerate([(30, 70), (30, 70), (30, 70), (30, 15)]):
        for cause, count in (("personnel", personnel), ("process", other)):
            rows += [{"complaint_id": f"W{week}{cause}{i}", "at": start + pd.Timedelta(days=7 * week + i % 7),
                      "channel": "app", "metadata_json": "{}", "cause": cause, "confidence": 0.9, "needs_review": False,
                      "explanation": "", "model_version": "m", "predicted_at": start} for i in range(count)]
    result = build_trends(pd.DataFrame(rows), Window(start, start + pd.Timedelta(days=27)),
                          load_settings().trends, period="week")
    alert = result.alerts.iloc[0]
    assert alert["cause"] == "personnel" and alert["test"] == "share" and alert["count_ratio"] < 1.1
    zh = alert_sentence(alert, result, language("zh", "week"))
    assert zh.startswith("占全部服务失误投诉的 66.7%，此前为 30.0%（2.2 倍）") and "预计" not in zh
    assert "expect" not in alert_sentence(alert, result, language("en", "week"))


HTML_HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>{{ 7*7 }}'
REPORT_ELEMENTS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "span", "ul", "li",
                   "details", "summary", "table", "thead", "tbody", "tr", "th", "td",
                   "svg", "line", "polyline", "rect", "circle", "text"}


class _PageParts(HTMLParser):
    """The elements, attribute names and text of a page, as a browser's parser sees them."""

    def __init__(self, page: str):
        super().__init__()
        self.elements, self.attributes, self.texts = set(), set(), []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.elements.add(tag)
        self.attributes |= {name for name, _ in attrs}

    def handle_data(self, data):
        self.texts.append(data)


def test_hostile_data_is_inert_text_in_the_html(tmp_path):
    """Markup, an attribute break-out and template syntax in a cause term, a channel, a complaint text and a
    metadata field: each reaches the page as the text it was (escaped; never an element, an attribute or
    an evaluated template expression), split by the channel and by the metadata field."""
    from pipeline.reporting.html_report import render_html

    rows = synthetic_rows(seed=21, days=126, per_day=60,
                          spike={"channel": "app", "cause": "technology", "factor": 3.0, "last_days": 14})
    rows["channel"] = rows["channel"].replace("app", "channel" + HTML_HOSTILE)
    rows["explanation"] = rows["explanation"].replace("死机", "term" + HTML_HOSTILE)
    rows["metadata_json"] = [json.dumps({"store": "store" + HTML_HOSTILE}) if i % 3 == 0 else metadata
                             for i, metadata in enumerate(rows["metadata_json"])]
    last_week = rows.loc[rows["at"] > rows["at"].max() - pd.Timedelta(days=7), "complaint_id"]
    settings = load_settings(work_dir=tmp_path)
    engine = store.connect(settings.resolved_database_url)
    write_to_store(engine, rows, texts={i: "text" + HTML_HOSTILE for i in last_week})
    reports = {split_by: build_report(engine, settings, split_by=split_by) for split_by in ("channel", "store")}
    engine.dispose()
    # the spike in the hostile channel: its alert names the channel
    assert reports["channel"].trends.alerts["group"].eq("channel" + HTML_HOSTILE).any()

    for split_by, report in reports.items():
        page = render_html(report)
        parts = _PageParts(page)
        assert parts.elements <= REPORT_ELEMENTS, parts.elements - REPORT_ELEMENTS
        assert not [name for name in parts.attributes if name.startswith("on")]
        text = "".join(parts.texts)
        shown = ["term", "channel", "text"] + (["store"] if split_by == "store" else [])  # metadata: when split by
        for field in shown:
            assert field + HTML_HOSTILE in text, (split_by, field)  # shown as written
        assert text.count("{{ 7*7 }}") >= 4 and "&lt;script&gt;" in page and "&lt;img" in page


MARKDOWN_HOSTILE_CHANNEL = '[点我](http://evil.example) ![x](http://evil.example/x.png) <img src=x onerror="alert(1)">|a'
MARKDOWN_HOSTILE_TERM = "**www.evil.example** `code` &lt;b&gt; a@b.example\n| x | y |"


def test_markdown_renders_hostile_data_as_plain_text(tmp_path):
    """A channel and a term holding links, an image, HTML, an entity and table breaks: rendered by a real
    markdown renderer (CommonMark + tables), none of it becomes markup, and every table keeps its shape."""
    from markdown_it import MarkdownIt

    from pipeline.reporting.report import render_markdown

    rows = synthetic_rows(seed=21, days=126, per_day=60,
                          spike={"channel": "app", "cause": "technology", "factor": 3.0, "last_days": 14})
    rows["channel"] = rows["channel"].replace("app", MARKDOWN_HOSTILE_CHANNEL)
    rows["explanation"] = rows["explanation"].replace("死机", MARKDOWN_HOSTILE_TERM)
    settings = load_settings(work_dir=tmp_path)
    engine = store.connect(settings.resolved_database_url)
    write_to_store(engine, rows)
    report = build_report(engine, settings, report_language="en")
    engine.dispose()
    summary = render_markdown(report)
    assert any("technology" in line and "点我" in line for line in summary.splitlines())  # the alert is there
    assert "点我" in summary and "evil" in summary.split("## Method")[0].split("## Terms")[1]  # and the term

    rendered = MarkdownIt("commonmark").enable("table").render(summary)
    for markup in ("<a ", "<img", "<code>", "<strong>www", "<b>"):
        assert markup not in rendered
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in rendered  # shown as written
    assert "&amp;lt;b&amp;gt;" in rendered  # an entity in the data stays the text it was
    for table in rendered.split("<table>")[1:]:
        header_cells = table.split("</thead>")[0].count("<th>")
        body_rows = table.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
        assert body_rows and all(row.count("<td>") == header_cells for row in body_rows)
    assert "http://" not in summary and "www." not in summary  # GFM's bare-link rule (Prefect's UI) finds none


def _complaints(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=PROJECT_ROOT)


@pytest.mark.slow
def test_the_trends_command_writes_each_format_and_fails_clearly(work_dir, tmp_path):
    output = tmp_path / "by-store.xlsx"
    result = _complaints("trends", "--work-dir", str(work_dir), "--by", "store", "--period", "month",
                         "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert f"trend report: {output}" in result.stdout.replace("\n", "")
    assert "store x cause" in load_workbook(output, read_only=True).sheetnames

    result = _complaints("trends", "--work-dir", str(work_dir), "--since", "2026-08-01", "--format", "md",
                         "--output", str(tmp_path / "recent.md"))
    assert result.returncode == 0, result.stderr
    assert "alert: technology (channel = app)" in result.stdout
    assert "2026-08-01 –" in (tmp_path / "recent.md").read_text(encoding="utf-8")

    result = _complaints("trends", "--work-dir", str(work_dir), "--by", "colour")
    assert result.returncode == 1 and "cannot split by 'colour'" in result.stderr and "['store']" in result.stderr


@pytest.mark.parametrize("arguments, message", [
    (["--format", "md", "--output", "report.html"], "make the suffix match"),
    (["--output", "report.csv"], "end the file name in .html, .xlsx or .md"),
    (["--since", "2027-01-01"], "after it ends"),
])
def test_the_trends_command_names_what_to_change(work_dir, tmp_path, arguments, message):
    from typer.testing import CliRunner

    from pipeline.cli.app import app

    arguments = [str(tmp_path / a) if a.startswith("report.") else a for a in arguments]
    result = CliRunner().invoke(app, ["trends", "--work-dir", str(work_dir), *arguments])
    assert result.exit_code == 1 and message in result.output


def test_the_trends_command_on_an_empty_store_says_what_to_do(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli.app import app

    missing = CliRunner().invoke(app, ["trends", "--work-dir", str(tmp_path / "missing")])
    assert missing.exit_code == 1 and "no database at" in missing.output and "complaints run SOURCE" in missing.output
    store.connect(load_settings(work_dir=tmp_path / "empty").resolved_database_url).dispose()
    result = CliRunner().invoke(app, ["trends", "--work-dir", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no classified complaints yet: run `complaints run SOURCE` first" in result.output


@pytest.mark.flow
def test_the_nightly_flow_writes_the_report_and_publishes_artifacts(prefect_harness, lexicon_settings):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.nightly import nightly_flow

    state = nightly_flow(source=str(SAMPLE), settings=lexicon_settings, return_state=True)
    summary = state.result()
    report = Path(summary["report"])
    assert report.parent == lexicon_settings.reports_dir and report.exists()
    assert report.with_suffix(".xlsx").exists() and report.with_suffix(".md").exists()
    assert '<h2 id="mix">原因构成</h2>' in report.read_text(encoding="utf-8")

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert set(by_key) == {"complaint-trends", "complaint-trends-table", "ticket-deadlines"}
    summary_artifact = by_key["complaint-trends"].data
    assert by_key["complaint-trends"].type == "markdown" and "## 需要关注" in summary_artifact
    # the report's path as text to open on the server: a browser will not follow a file:// link from the UI
    assert "file://" not in summary_artifact and str(report.resolve()).replace("_", "\\_") in summary_artifact
    assert "█" in summary_artifact  # the charts, as text
    table = by_key["complaint-trends-table"].data
    rows = json.loads(table) if isinstance(table, str) else table
    # a fresh store: this run is all there is; 'none' is the review backlog, not a cause
    assert {row["cause"] for row in rows} == set(summary["causes"]) - {"none"}
    assert all(row["count"] is not None and 0 <= row["share"] <= 1 for row in rows)


def test_text_bars_draw_shares_in_block_characters():
    from pipeline.reporting.markdown_report import stacked_text_bar, text_bar

    assert text_bar(0.5, width=10) == "█████" and text_bar(0.05, width=10) == "▌" and text_bar(None) == ""
    bar = stacked_text_bar({"same_day": 1, "next_day": 0, "later": 2, "open_late": 0, "open": 1}, width=8)
    assert bar == "██▒▒▒▒··"  # every bucket its share of the width, an empty one nothing
    assert len(stacked_text_bar({"same_day": 3, "next_day": 3, "later": 3, "open_late": 3, "open": 3})) == 20
