"""The words of the trend report, Chinese first (``zh``, the default) and English (``en``).

Everything a reader sees goes through ``Language``: ``text("key", name=value)`` formats a string of the
chosen language, ``text.cause(label)`` names a cause. Data (channels, terms, complaint texts) is never
translated. Workbook sheet and column names stay English keys: people's formulas and scripts use them.
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.tickets.updates import RESOLUTIONS
from pipeline.labels import CAUSE_NAMES_ZH, NONE_LABEL

LANGUAGES = ("zh", "en")

_ZH = {
    "title": "投诉原因与补救 — {period_name}",
    "period_name.day": "{start} 这一天", "period_name.week": "{start} 起的这一周", "period_name.month": "{start} 这个月",
    "unit.day": "天", "unit.week": "周", "unit.month": "月",
    "this.day": "当天", "this.week": "本周", "this.month": "本月", "prev.day": "前一天", "prev.week": "上周",
    "prev.month": "上月", "each.day": "每天", "each.week": "每周", "each.month": "每月",
    "several.day": "几天", "several.week": "几周", "several.month": "几个月",
    "that.day": "那一天", "that.week": "那一周", "that.month": "那个月",
    "count.day": "{n} 天", "count.week": "{n} 周", "count.month": "{n} 个月",
    "meta": "{start} – {end} · 服务失误投诉 {complaints} 条 · 非投诉 {not_complaints} 条 · 按{unit}统计 · 按{split}拆分 · "
            "生成于 {generated}",
    "split.channel": "渠道", "split.store": "门店", "split.product": "产品",
    "overall": "整体", "where": "{split}「{group}」",
    "so_far": "（{this}已过 {elapsed}/{length} 天）",
    # key figures
    "kpi.failures": "{this}服务失误投诉", "kpi.failures.detail": "{prev} {previous}",
    "kpi.alerts": "需要关注", "kpi.alerts.detail": "项预警：原因明显高于往常",
    "kpi.breached": "超时未解决", "kpi.breached.detail": "回应顾客超时 {respond} 件",
    "kpi.same_day": "当天补救", "kpi.same_day.detail": "已解决的 {resolved} 件中",
    "kpi.backlog": "待人工复核", "kpi.backlog.detail": "不计入原因占比",
    # alerts
    "h.alerts": "需要关注",
    "alerts.calm": "{this}没有哪个原因明显高于它自己往常的水平。",
    "alerts.what": "预警表示：某个原因（整体或在某个{split}内）的投诉条数或占比明显高于它自己此前{several}的水平，"
                   "经多重检验校正后仍然显著。它说明哪里在变坏，不说明哪个原因最多。",
    "alert.count": "{this} {count} 条，按此前 {periods}的水平预计约 {expected} 条（{ratio}）",
    "alert.share": "占{scope_text}服务失误投诉的 {share}，此前为 {baseline}（{ratio}）",
    "alert.scope_all": "全部", "alert.scope_group": "该{split}",
    "alert.since_new": "{this}首次出现", "alert.since": "自 {since} {that}起持续偏高",
    "alert.examples": "例：",
    "alert.stats": "统计依据",
    "alert.more": "另有 {count} 条预警，见工作簿的 alerts 表。",
    # recovery
    "h.recovery": "补救与时限",
    "recovery.why": "速度决定投诉的顾客是否留下：问题迅速解决，九成以上会留下；拖很久才解决，只能留住约六成。按 1:10:100 法则，"
                    "当场补救的代价约为 1，第二天约 10，之后约 100（这里以投诉当天近似“当场”）。所有时间都从顾客投诉时起算。",
    "recovery.no_updates": "还没有工单被回应或解决：各处理团队用 complaints tickets update（或回调接口）上报进展后，这里会显示补救速度。",
    "recovery.none": "这段时间没有服务失误的工单。",
    "h.speed": "什么时候补救的（1:10:100）",
    "speed.same_day": "当天（≈1）", "speed.next_day": "次日（≈10）", "speed.later": "更晚（≈100）",
    "speed.open_late": "仍未解决，已过次日", "speed.open": "仍未解决",
    "h.times": "回应与解决用时（中位数 · 90% 分位）",
    "times.note": "浅色：回应顾客；深色：解决。圆点为中位数，线段延伸到 90% 分位。只计已完成的工单，仍在等待的计入“超时未解决”。",
    "times.answer": "回应", "times.resolve": "解决",
    "col.cause": "原因", "col.group": "", "col.tickets": "工单", "col.respond": "回应用时 中位/90%",
    "col.resolve": "解决用时 中位/90%", "col.in_time": "按时解决", "col.breached": "超时未解决",
    "col.respond_late": "超时未回应", "col.reopened": "重开", "col.compensated": "补偿 件 · 金额",
    "in_time": "{share}（{due} 件已到期）",
    "h.by_queue": "按处理队列", "h.by_channel": "按渠道", "col.queue": "队列", "col.channel": "渠道",
    "h.compensation": "处理结果与补偿", "col.total": "补偿合计", "col.median": "补偿中位数",
    "h.corrections": "处理人员更正的原因",
    "corrections.note": "处理投诉的人更正的原因也是一条人工标注，会进入模型的训练数据。",
    "col.routed": "原判", "col.found": "实为", "col.complaints": "条数", "col.share_routed": "占原判比例",
    "hours": "{value:.1f} 小时", "days": "{value:.1f} 天",
    # cause mix
    "h.mix": "原因构成", "mix.note": "只计服务失误投诉；非投诉和待复核的文本见“待人工复核”。",
    "h.adjusted": "校正分类器误差后的原因占比",
    "adjusted.none": "尚无校正：已为审计抽取 {drawn} 条，已标注的不足 {minimum} 条。用 complaints review export --audit 400 "
                     "随机抽取一批投诉，人工标注后用 complaints review import 导入；下面是分类器给出的占比。",
    "adjusted.note": "依据 {labels} 条随机抽取、经人工标注的投诉校正（共抽取 {drawn} 条），区间为 95% bootstrap 区间。",
    "adjusted.unaudited": "窗口中有 {share} 被预测为审计样本里没有出现过的原因，这部分按预测计。",
    "adjusted.model": "窗口中只有 {share} 的投诉由审计所测的模型（{versions}）分类：请重新抽取审计样本。",
    "adjusted.alerts": "预警用的是分类器的原始计数，而不是校正后的占比：校正对每个时期都一样，分类器看到的变化就是投诉本身的变化，"
                       "而原始计数不带审计抽样的误差。校正后的占比回答另一个问题：每个原因实际有多大。",
    "col.raw_share": "分类器给出的占比", "col.adjusted_share": "校正后占比", "col.interval": "95% 区间",
    "h.shares": "{each}的原因占比",
    "h.change": "{this}与{prev}相比",
    "col.count": "{this}", "col.previous": "{prev}", "col.change": "变化", "col.share": "占比",
    "col.previous_share": "{prev}占比", "col.change_points": "变化（百分点）", "col.alert": "预警", "yes": "是",
    "points": "{value} 个百分点",
    "h.panels": "各原因走势",
    "panels.note": "实线：{each}投诉条数；虚线：按此前水平的预期；红点：整体预警；红圈：某个{split}内的预警。",
    "panel.title": "{cause} · {this} {count} 条", "panel.expected": "预期 {value}",
    "h.where": "分布：问题出在哪里",
    "where.note": "数字：投诉条数。颜色：该原因在这一行中的占比与它在所有行中的占比相比——偏红表示更高（最红为两倍），偏蓝表示更低"
                  "（最蓝为一半）；差异不超出随机波动（|观察−预期|/√预期 < {residual}）的格子保持白色。",
    "where.title": "{split} × 原因", "where.more": "只列出最大的 {shown} 个（共 {total} 个）。", "total": "合计",
    # backlog
    "h.backlog": "待人工复核",
    "backlog.note": "这些文本不计入原因占比和预警：模型或人工判定为非投诉的，以及模型没有把握、还在等人看的。"
                    "用 complaints review export 导出，标注后 complaints review import 导入。",
    "col.period": "时期", "col.not_complaints": "非投诉", "col.awaiting": "待人工复核（至今）",
    # terms and examples
    "h.terms": "{this}各原因的关键词", "col.terms": "关键词（条数，占该原因投诉的比例）",
    "terms.note": "关键词是分类器给出的判断依据。", "terms.none": "{this}没有存储关键词。",
    "h.examples": "{this}投诉示例（个人信息已遮盖）", "examples.none": "{this}没有投诉。",
    "confidence": "置信度 {value:.2f}",
    "h.method": "方法",
    "empty": "这段时间没有已分类的投诉。",
    "unfamiliar": "本时段 {share} 的文本与模型的训练数据差别较大（其他行业、渠道或说法）：它们的原因判断不那么可靠，"
                  "自动分派的更少，下面的原因占比在人工复核之前部分依赖模型的猜测。",
    "report_at": "完整报告（HTML，在服务器上打开）：{path}",
    "backlog_line": "待人工复核 {awaiting} 条（本窗口），非投诉 {not_complaints} 条。",
    "method": [
        "{each}与它自己的基线比较：即它之前的 {baseline}（有 {minimum}以上才开始检验）。",
        "条数检验：按天计的发生率的单侧精确检验——给定本期与基线的合计 n，发生率不变时本期条数服从 Binomial(n, e / (e + e_基线))"
        "（e 为覆盖的天数，所以月份长短和未过完的本期都公平）。",
        "占比检验：该原因在该组服务失误投诉中的占比与基线占比的单侧 Fisher 精确检验（超几何分布尾部）；投诉总量普遍上升不会触发它。",
        "同一期的所有 p 值（两种检验、每个原因、整体和每个{split}）一起做 Benjamini–Hochberg 校正；q ≤ {alpha} 且与预期之比至少 "
        "{ratio} 才算通过。少于 {minimum_count} 条不预警。",
        "数据平稳时，每{unit}出现误报的概率约为 {alpha} 或更低。“自……起”指连续预警开始的那一{unit}。",
        "一条投诉的时间是它的 created_at（来源没有日期时用入库时间）；原因是最近一次人工复核的标注，没有复核时用最新的预测。"
        "“非投诉”不是原因，不计入占比。",
        "校正后的占比：按预测原因分层（两阶段抽样的后分层估计）——窗口中各预测原因的占比，乘以审计样本里被预测为该原因的投诉实际被标为"
        "各原因的比例；区间来自对审计样本的 bootstrap。",
        "补救：时间从顾客投诉起算（工单的计时起点）；“当天/次日/更晚”按本地日历日（{timezone}）。按时解决的比例只算已到期或已解决的工单。",
    ],
}

_EN = {
    "title": "Complaint causes and recovery — {period_name}",
    "period_name.day": "{start}", "period_name.week": "week of {start}", "period_name.month": "{start}",
    "unit.day": "day", "unit.week": "week", "unit.month": "month",
    "this.day": "this day", "this.week": "this week", "this.month": "this month", "prev.day": "previous day",
    "prev.week": "previous week", "prev.month": "previous month", "each.day": "each day", "each.week": "each week",
    "each.month": "each month", "several.day": "days", "several.week": "weeks", "several.month": "months",
    "that.day": "day", "that.week": "week", "that.month": "month",
    "count.day": "{n} days", "count.week": "{n} weeks", "count.month": "{n} months",
    "meta": "{start} – {end} · {complaints} service-failure complaints · {not_complaints} not complaints · per {unit} · "
            "split by {split} · generated {generated}",
    "split.channel": "channel", "split.store": "store", "split.product": "product",
    "overall": "overall", "where": "{split} {group}",
    "so_far": " ({elapsed} of {length} days so far)",
    "kpi.failures": "service failures this {unit}", "kpi.failures.detail": "previous {unit}: {previous}",
    "kpi.alerts": "need attention", "kpi.alerts.detail": "alerts: a cause well above its usual level",
    "kpi.breached": "open past deadline", "kpi.breached.detail": "{respond} customers answered late or not yet",
    "kpi.same_day": "put right the same day", "kpi.same_day.detail": "of {resolved} resolved",
    "kpi.backlog": "waiting for review", "kpi.backlog.detail": "not counted in the cause shares",
    "h.alerts": "What needs attention",
    "alerts.calm": "No cause is clearly above its own usual level this {unit}.",
    "alerts.what": "An alert means a cause (overall or within one {split}) has clearly more complaints, or a clearly "
                   "larger share, than in its own previous {unit}s, significant after correcting for the many tests. It "
                   "says where things get worse, not which cause is largest.",
    "alert.count": "{count} this {unit}, where its previous {periods} would lead to expect about {expected} "
                   "({ratio})",
    "alert.share": "{share} of {scope_text} service-failure complaints, against {baseline} before ({ratio})",
    "alert.scope_all": "all", "alert.scope_group": "this {split}'s",
    "alert.since_new": "new this {unit}", "alert.since": "high since the {unit} of {since}",
    "alert.examples": "For example:",
    "alert.stats": "Statistics",
    "alert.more": "{count} more alerts are in the workbook's alerts sheet.",
    "h.recovery": "Recovery and deadlines",
    "recovery.why": "Speed decides whether a complaining customer stays: put right quickly, nine in ten stay; dragged "
                    "out, about six in ten. By the 1:10:100 rule a recovery on the spot costs about 1, the next day "
                    "about 10, later about 100 (the day of the complaint stands in for 'on the spot' here). Every time "
                    "counts from the moment the customer complained.",
    "recovery.no_updates": "No ticket has been answered or resolved yet: once the teams report progress with "
                           "complaints tickets update (or the call-back endpoint), recovery speed shows here.",
    "recovery.none": "No tickets of service failures in this window.",
    "h.speed": "When complaints were put right (1:10:100)",
    "speed.same_day": "same day (≈1)", "speed.next_day": "next day (≈10)", "speed.later": "later (≈100)",
    "speed.open_late": "still open, past the next day", "speed.open": "still open",
    "h.times": "Hours to answer and to resolve (median · 90th percentile)",
    "times.note": "Light: answering the customer; dark: resolving. The dot is the median, the line runs to the 90th "
                  "percentile. Finished tickets only; those still waiting are counted under 'open past deadline'.",
    "times.answer": "answer", "times.resolve": "resolve",
    "col.cause": "cause", "col.group": "", "col.tickets": "tickets", "col.respond": "to answer: median / p90",
    "col.resolve": "to resolve: median / p90", "col.in_time": "resolved in time", "col.breached": "open past deadline",
    "col.respond_late": "answered late", "col.reopened": "reopened", "col.compensated": "compensated · amount",
    "in_time": "{share} ({due} due)",
    "h.by_queue": "By queue", "h.by_channel": "By channel", "col.queue": "queue", "col.channel": "channel",
    "h.compensation": "Resolutions and compensation", "col.total": "compensation total",
    "col.median": "median compensation",
    "h.corrections": "Causes corrected by the people who handled them",
    "corrections.note": "A cause corrected while handling a complaint is a human label too: it goes into the model's "
                        "training data.",
    "col.routed": "routed as", "col.found": "found to be", "col.complaints": "complaints",
    "col.share_routed": "share of routed",
    "hours": "{value:.1f} h", "days": "{value:.1f} d",
    "h.mix": "Cause mix", "mix.note": "Service-failure complaints only; texts that are not complaints or wait for "
                                      "review are under 'Review backlog'.",
    "h.adjusted": "Cause shares corrected for the classifier's errors",
    "adjusted.none": "No adjusted shares yet: {drawn} complaints drawn for an audit, fewer than {minimum} labelled. Draw a "
                     "random sample with complaints review export --audit 400, label it and complaints review import "
                     "it; the shares below are the classifier's.",
    "adjusted.note": "Adjusted by {labels} randomly drawn complaints that people labelled (of {drawn} drawn); 95% "
                     "bootstrap intervals.",
    "adjusted.unaudited": "{share} of the window was predicted as a cause no audited complaint had: kept as predicted.",
    "adjusted.model": "Only {share} of the window was classified by the model the audit measured ({versions}): draw a "
                      "new audit.",
    "adjusted.alerts": "The alerts test the classifier's own counts, not the adjusted shares: the audit's correction is "
                       "the same for every period, so a change the classifier sees is a change in the complaints, and "
                       "the raw counts carry none of the audit's sampling uncertainty. The adjusted shares answer "
                       "another question: how large each cause really is.",
    "col.raw_share": "classifier's share", "col.adjusted_share": "adjusted share", "col.interval": "95% interval",
    "h.shares": "Cause shares per {unit}",
    "h.change": "This {unit} against the previous one",
    "col.count": "this {unit}", "col.previous": "previous", "col.change": "change", "col.share": "share",
    "col.previous_share": "previous share", "col.change_points": "change (points)", "col.alert": "alert", "yes": "yes",
    "points": "{value} points",
    "h.panels": "Each cause over time",
    "panels.note": "Line: complaints per {unit}. Dashed: what the trailing baseline expected. Red dot: alert overall; "
                   "red ring: alert within one {split}.",
    "panel.title": "{cause} · {count} this {unit}", "panel.expected": "expected {value}",
    "h.where": "Where: complaints by cause over the whole window",
    "where.note": "Numbers: complaints. Colour: the cause's share of the row's complaints against its share over all "
                  "rows — red where larger (full red: twice), blue where smaller (full blue: half). Cells stay white "
                  "unless the difference is beyond chance (|observed − expected| / √expected ≥ {residual}).",
    "where.title": "{split} × cause", "where.more": "The {shown} largest of {total}.", "total": "total",
    "h.backlog": "Review backlog",
    "backlog.note": "Not counted in the cause shares or alerts: texts the model or a person judged not to be a "
                    "complaint, and those the model was unsure about that still wait for a person. Export them with "
                    "complaints review export, label, and complaints review import.",
    "col.period": "period", "col.not_complaints": "not complaints", "col.awaiting": "waiting for review (now)",
    "h.terms": "Terms behind each cause this {unit}", "col.terms": "terms (complaints, share of the cause's complaints)",
    "terms.note": "Terms are the words the classifier gave as the reason for each cause.",
    "terms.none": "No explanation terms were stored for this {unit}.",
    "h.examples": "Example complaints this {unit} (personal data masked)", "examples.none": "No complaints this {unit}.",
    "confidence": "confidence {value:.2f}",
    "h.method": "Method",
    "empty": "No classified complaints in this window.",
    "unfamiliar": "{share} of the texts in this window look unlike the model's training data (another industry, "
                  "channel or wording). Their causes are less certain: fewer were routed without review, and the cause "
                  "shares below lean on the model's guesses for them until people review them.",
    "report_at": "Full report (HTML, open it on the server): {path}",
    "backlog_line": "{awaiting} waiting for review (this window), {not_complaints} not complaints.",
    "method": [
        "Each {unit} is compared with its own baseline: the {baseline} before it (tests start once {minimum} "
        "exist).",
        "Count test: one-sided exact test of the daily rate — given the combined count n of the period and its "
        "baseline, the period's count is Binomial(n, e / (e + e_baseline)) when the rate has not changed (e = days "
        "covered, so months and the unfinished current period are fair).",
        "Share test: one-sided Fisher exact test (hypergeometric tail) of the cause's share of the group's "
        "service-failure complaints against the baseline share; a general rise in complaints does not trigger it.",
        "All p-values of a period (both tests, every cause, overall and per {split}) are corrected together with "
        "Benjamini–Hochberg; a test passes at q ≤ {alpha} with a ratio to the expectation of at least {ratio}. No alert "
        "below {minimum_count} complaints.",
        "Under steady data a {unit} raises a false alert with a probability of about {alpha} or less. 'Since' is the "
        "first {unit} of the unbroken run of flagged {unit}s that ends in the latest one.",
        "A complaint's time is its created_at, or ingested_at when the source had no date; its cause is the latest "
        "review's label when reviewed, else the latest prediction. 'Not a complaint' is no cause and is not counted "
        "in the shares.",
        "Adjusted shares: post-stratification by predicted cause (two-phase sampling) — the window's share of each "
        "predicted cause times how the audited complaints predicted so were labelled; intervals from a bootstrap of "
        "the audit sample.",
        "Recovery: times count from the complaint (the ticket's clock start); same day / next day / later are local "
        "calendar days ({timezone}). 'Resolved in time' counts only tickets that are due or resolved.",
    ],
}

_RESOLUTIONS_EN = {"apologised": "apologised", "fixed": "fixed", "compensated": "compensated",
                   "explained": "explained", "not_our_fault": "not our fault"}


@dataclass(frozen=True)
class Language:
    """The strings of one language, for a report counted per ``period`` (day, week or month): every string
    may use {unit} (周), {this} (本周), {prev} (上周), {each} (每周), {several} (几周) and {that} (那一周)."""

    code: str
    period: str = "week"

    @property
    def _strings(self) -> dict:
        return _ZH if self.code == "zh" else _EN

    def _period_words(self) -> dict:
        return {name: self._strings[f"{name}.{self.period}"] for name in ("unit", "this", "prev", "each", "several", "that")}

    def __call__(self, key: str, **values) -> str:
        return self._strings[key].format(**{**self._period_words(), **values})

    def lines(self, key: str, **values) -> list[str]:
        return [line.format(**{**self._period_words(), **values}) for line in self._strings[key]]

    def count(self, n: int) -> str:
        """n periods: 8 周, 3 个月, 8 weeks."""
        return self._strings[f"count.{self.period}"].format(n=n)

    def colon(self) -> str:
        return "：" if self.code == "zh" else ": "

    def cause(self, cause: str) -> str:
        if self.code == "zh":
            return "非投诉" if cause == NONE_LABEL else CAUSE_NAMES_ZH.get(cause, cause)
        return "not a complaint" if cause == NONE_LABEL else cause

    def split(self, column: str) -> str:
        key = f"split.{column}"
        return self(key) if key in _ZH else column

    def unit(self, period: str | None = None) -> str:
        return self._strings[f"unit.{period or self.period}"]

    def resolution(self, code: str) -> str:
        return (RESOLUTIONS if self.code == "zh" else _RESOLUTIONS_EN).get(code, code)

    def ratio(self, value) -> str:
        if value == float("inf"):
            return "此前没有" if self.code == "zh" else "none before"
        return f"{value:.1f} 倍" if self.code == "zh" else f"×{value:.1f}"

    def duration(self, hours) -> str:
        if hours is None or hours != hours:  # NaN
            return "–"
        return self("hours", value=hours) if hours < 48 else self("days", value=hours / 24)


def language(code: str, period: str = "week") -> Language:
    if code not in LANGUAGES:
        raise ValueError(f"report language must be one of {LANGUAGES}, got {code!r}")
    return Language(code, period)
