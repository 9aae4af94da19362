"""Every label of the dashboard, in Chinese (the default) and English: one table, one look-up.

The bulletin's column headings come from :mod:`hie.metrics.export`, so that the pages and the
CSV/XLSX exports can never name a column differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from hie.metrics.export import COLUMNS

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

LABELS: dict[str, tuple[str, str]] = {
    "app.title": ("卫生信息平台数据采集监测", "Health-information exchange monitor"),
    "nav.skip": ("跳到正文", "Skip to content"),
    "nav.overview": ("月度概览", "Month overview"),
    "nav.language": ("English", "中文"),
    "nav.signout": ("退出", "Sign out"),
    "nav.audit": ("审计日志", "Audit trail"),
    "nav.forwarding": ("向上级转发", "Forwarding"),
    "nav.signed_in_as": ("已登录：{role}", "Signed in: {role}"),
    "role.admin": ("管理员", "administrator"),
    "role.regulator": ("监管", "regulator"),
    "role.submitter": ("上报机构 {code}", "submitter {code}"),
    "role.clinician": ("临床医生 {code}", "clinician {code}"),
    "signin.title": ("登录", "Sign in"),
    "signin.token": ("访问令牌", "Access token"),
    "signin.help": (
        "粘贴由 hie tokens create 生成的监管、管理员或本机构令牌。",
        "Paste a regulator, administrator or institution token made by hie tokens create.",
    ),
    "signin.submit": ("登录", "Sign in"),
    "signin.bad_token": ("令牌无效或已吊销。", "The token is unknown or revoked."),
    "signin.locked": (
        "登录失败次数过多，请 {minutes} 分钟后再试。",
        "Too many failed sign-ins; try again in {minutes} minutes.",
    ),
    "signin.bad_form": (
        "表单已过期，请重新提交。",
        "The form has expired; please submit it again.",
    ),
    "error.forbidden": ("无权查看此页面。", "You may not see this page."),
    "error.not_found": ("未找到。", "Not found."),
    "error.own_page": ("返回本机构页面", "Back to your institution's page"),
    "error.title": ("错误", "Error"),
    "month.label": ("月份", "Month"),
    "month.show": ("查看", "Show"),
    "month.none": (
        "尚未计算任何月度报告。请运行 hie metrics compute。",
        "No monthly report has been computed yet. Run hie metrics compute.",
    ),
    "month.missing": ("{month} 尚无月度报告。", "There is no report for {month} yet."),
    "month.generated": ("生成于 {time}", "Computed {time}"),
    "month.provisional": ("（本月未结束，数据为临时值）", "(month not over: provisional figures)"),
    "overview.title": ("{month}卫生信息平台数据采集情况", "Data collection, {month}"),
    "overview.district": ("区", "Districts"),
    "overview.hospital": ("医院", "Hospitals"),
    "overview.cumulative": (
        "截至{month}底，区及医院累计校验入库数据 {n} 条。",
        "Records validated and stored by districts and hospitals up to the end of {month}: {n}.",
    ),
    "overview.flagged": ("{n} 家机构有质量提示", "institutions flagged: {n}"),
    "overview.bar": ("声明表已上传 {pct}", "declared tables uploaded: {pct}"),
    "overview.legend": ("条形：已上传的声明表占比", "Bars: share of declared tables uploaded"),
    "legend.good": ("90% 及以上", "90% or more"),
    "legend.fair": ("60%–90%", "60% to 90%"),
    "legend.poor": ("60% 以下", "under 60%"),
    "overview.no_reply": ("未反馈", "no reply"),
    "overview.print": ("打印通报", "Print as bulletin"),
    "sort.by": ("按此列排序", "sort by this column"),
    "sort.asc": ("升序", "ascending"),
    "sort.desc": ("降序", "descending"),
    "export.csv": ("导出 CSV", "Export CSV"),
    "export.xlsx": ("导出 XLSX", "Export XLSX"),
    "kind.district": ("区", "district"),
    "kind.hospital": ("医院", "hospital"),
    "inst.code": ("机构代码", "Code"),
    "inst.kind": ("类型", "Kind"),
    "inst.district": ("所属区", "District"),
    "inst.figures": ("本月指标", "This month's figures"),
    "inst.flags": ("质量提示", "Data-quality flags"),
    "inst.no_flags": ("无质量提示。", "No flags."),
    "inst.no_row": (
        "该机构不在 {month} 的报告中。",
        "The institution is not in the {month} report.",
    ),
    "inst.tables": ("上传表：声明、规定与已上传", "Tables: declared, required and uploaded"),
    "inst.calendar": ("上传日历", "Upload days"),
    "inst.trends": ("近 12 个月趋势", "12-month trends"),
    "inst.trend_data": ("趋势数据表", "Trend data"),
    "inst.rejections": ("拒收原因", "Rejection reasons"),
    "inst.no_rejections": ("本月无拒收。", "Nothing rejected this month."),
    "inst.timeliness": ("及时性", "Timeliness"),
    "inst.latency_data": ("延迟分布数据", "Delay distribution data"),
    "status.ok": ("已声明并上传", "declared and uploaded"),
    "status.missing": ("已声明未上传", "declared, nothing uploaded"),
    "status.undeclared": ("未声明却上传", "uploaded, not declared"),
    "status.not_declared": ("规定但未声明", "required, not declared"),
    "status.uploaded": ("已上传", "uploaded"),
    "status.not_uploaded": ("未上传", "not uploaded"),
    "grid.count": ("{n} 张", "{n}"),
    "col.table": ("上传表", "Table"),
    "col.table_name": ("名称", "Name"),
    "col.required": ("规定", "Required"),
    "col.declared": ("声明", "Declared"),
    "col.status": ("状态", "Status"),
    "col.month_records": ("本月记录数", "Records this month"),
    "col.day": ("日期", "Day"),
    "col.rejected_day": ("拒收数", "Rejected"),
    "col.month": ("月份", "Month"),
    "col.rule": ("规则", "Rule"),
    "col.occurrences": ("次数", "Count"),
    "col.sample": ("示例错误", "Sample error"),
    "col.bucket": ("延迟", "Delay"),
    "col.versions": ("记录版本数", "Record versions"),
    "col.kind": ("类型", "Kind"),
    "col.days": ("上传天数", "Upload days"),
    "col.district": ("所属区", "District"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "weekday.0": ("一", "Mon"),
    "weekday.1": ("二", "Tue"),
    "weekday.2": ("三", "Wed"),
    "weekday.3": ("四", "Thu"),
    "weekday.4": ("五", "Fri"),
    "weekday.5": ("六", "Sat"),
    "weekday.6": ("日", "Sun"),
    "calendar.day": ("{day} 日：{records} 条记录", "day {day}: {records} records"),
    "calendar.rejected": ("拒收 {n}", "{n} rejected"),
    "timeliness.measured": ("有临床时间的记录版本", "Record versions with a clinical time"),
    "timeliness.median": ("延迟中位数（不超过）", "Median delay (at most)"),
    "timeliness.within_day": ("一天内送达比例", "Share received within a day"),
    "timeliness.hours": ("{n} 小时", "{n} h"),
    "timeliness.none": ("无数据", "no data"),
    "fig.declared": ("声明上传表", "Declared tables"),
    "fig.uploaded_tables": ("已上传表", "Uploaded tables"),
    "fig.records": ("数据入库量", "Records stored"),
    "fig.upload_days": ("数据上传天数", "Upload days"),
    "fig.outpatient_visits": ("门急诊信息上传人次", "Outpatient and emergency visits"),
    "fig.discharges": ("出院信息上传人次", "Discharges"),
    "fig.health_records.basic": ("健康档案·基本信息", "Health records: basic"),
    "fig.health_records.hypertension": ("健康档案·高血压", "Health records: hypertension"),
    "fig.health_records.diabetes": ("健康档案·糖尿病", "Health records: diabetes"),
    "fig.rejected": ("拒收数", "Rejected"),
    "fig.rejection_rate": ("拒收率", "Rejection rate"),
    "fig.timeliness.within_1_day": ("一天内送达比例", "Received within a day"),
    "chart.latest": ("最近：{value}", "latest: {value}"),
    "chart.empty": ("无数据", "no data"),
    "table.title": ("上传表 {code}", "Table {code}"),
    "table.standard": ("标准", "Standard"),
    "table.required_for": ("规定上传机构", "Required of"),
    "table.nobody": ("无（可选）", "nobody (optional)"),
    "table.uploaders": ("本月上传该表的机构", "Institutions that uploaded it this month"),
    "table.silent": ("已声明但本月未上传的机构", "Declared it but sent nothing this month"),
    "table.none": ("无。", "None."),
    "flag.declared-silent": ("声明未传", "declared, silent"),
    "flag.undeclared-tables": ("未声明上传", "undeclared tables"),
    "flag.records-per-visit": ("每人次记录数异常", "records per visit"),
    "flag.chronic-ratio": ("慢病人数比例异常", "chronic-disease ratio"),
    "flag.month-drop": ("环比骤降", "month-on-month drop"),
    "flag.few-upload-days": ("上传天数少", "few upload days"),
    "audit.title": ("审计日志", "Audit trail"),
    "audit.help": (
        "临床数据的每次读写、登录和配置变更均有记录，记录链式防篡改（hie audit verify 校验）。",
        "Every read and write of clinical data, sign-in and change of settings is recorded in a "
        "tamper-evident chain (checked by hie audit verify).",
    ),
    "audit.actor": ("操作者", "Who"),
    "audit.role": ("角色", "Role"),
    "audit.institution": ("所属机构", "Institution"),
    "audit.address": ("来源地址", "From"),
    "audit.action": ("操作", "Action"),
    "audit.target": ("对象", "What"),
    "audit.outcome": ("结果", "Outcome"),
    "audit.detail": ("详情", "Detail"),
    "audit.time": ("时间", "When"),
    "audit.from": ("起始日期", "From day"),
    "audit.to": ("截止日期", "To day"),
    "audit.failed": ("仅失败或被拒", "Failures and refusals only"),
    "audit.filter": ("筛选", "Filter"),
    "audit.entries": ("记录", "Entries"),
    "audit.page": ("第 {n} 页", "page {n}"),
    "audit.none": ("没有符合条件的记录。", "No entries match."),
    "audit.previous": ("上一页", "Previous"),
    "audit.next": ("下一页", "Next"),
    "audit.outcome.0": ("成功", "success"),
    "audit.outcome.4": ("拒绝或未找到", "refused or not found"),
    "audit.outcome.8": ("失败", "failed"),
    "audit.outcome.12": ("严重失败", "major failure"),
    "forwarding.title": ("向上级平台转发", "Forwarding to upstream platforms"),
    "forwarding.help": (
        "已接收的记录按目的地转发（hie forward add 配置）。待发送含队列中等待和重试中的记录；"
        "失败为对方拒收的记录。",
        "Accepted records are forwarded to each destination (configured with hie forward add). "
        "Pending counts what waits in its queue or is being retried; failed, what the upstream "
        "refused.",
    ),
    "forwarding.destination": ("目的地", "Destination"),
    "forwarding.url": ("地址", "URL"),
    "forwarding.tables": ("上传表", "Tables"),
    "forwarding.all_tables": ("全部", "all"),
    "forwarding.pending": ("待发送", "Pending"),
    "forwarding.sent": ("已发送", "Sent"),
    "forwarding.failed": ("失败", "Failed"),
    "forwarding.last_activity": ("最近活动", "Last activity"),
    "forwarding.queue_unknown": ("队列未知", "queue unknown"),
    "forwarding.none": ("尚未配置目的地。", "No destinations are configured."),
    "forwarding.failures": ("最近失败", "Latest failures"),
    "forwarding.record": ("记录", "Record"),
    "forwarding.institution": ("机构", "Institution"),
    "forwarding.error": ("原因", "Reason"),
}
LABELS.update({f"col.{c.key}": (c.zh, c.en) for c in COLUMNS})


def pick_language(query: str | None, cookie: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    lang: str

    def __call__(self, key: str, **values: object) -> str:
        pair = LABELS.get(key)
        # An unknown key shows itself, so that a missing label is visible rather than blank.
        text = key if pair is None else pair[0 if self.lang == "zh" else 1]
        return text.format(**values) if values else text

    def month(self, month: date) -> str:
        return f"{month.year}年{month.month}月" if self.lang == "zh" else f"{month:%B %Y}"

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.lang == "zh" else "en"
