"""Frameworks for building a metric system: PULSE, HEART, GSM, AARRR, North Star.

``init_framework`` writes one commented YAML file into the project: a ``system`` (the
framework's goals / categories / stages with their links) and placeholder metrics that
are valid from the first minute and say, in comments, what to replace them with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.i18n import get_language, t
from yunying.metrics.spec import Registry, SystemNode, registry_from_texts

FRAMEWORKS = ("pulse", "heart", "gsm", "aarrr", "north-star")


def _metric(name: str, zh: str, en: str, definition: str, body: str, explain: str) -> str:
    lines = [f"  # {explain}", f"  - name: {name}", f"    label: {{zh: {zh}, en: {en}}}",
             f"    definition: {definition}", "    owner: TODO"]
    lines += ["    " + b for b in body.strip().splitlines()]
    return "\n".join(lines)


_COUNT_EVENT = "type: simple\ntable: events\nagg: count\nwhere: {{event: {e}}}"
_DISTINCT_EVENT = "type: simple\ntable: events\nagg: count_distinct\ncolumn: user_id\nwhere: {{event: {e}}}"

_ACTIVE = "type: simple\ntable: events\nagg: count_distinct\ncolumn: user_id"
_GMV = "type: simple\ntable: orders\nagg: sum\ncolumn: amount\nformat: currency\nwhere: {status: [paid, refunded]}"


def _templates() -> dict[str, tuple[str, list[str]]]:
    """framework → (system YAML, metric YAML snippets)."""
    pulse = (
        """system:
  framework: pulse
  title: PULSE — 网站/产品运行指标 (site-centred)
  nodes:
    - {name: page_views, kind: category, label: {zh: 页面浏览, en: Page views}, metrics: [pulse_page_views],
       explain: "How much the product is used. Replace the event name with your page-view event."}
    - {name: uptime, kind: category, label: {zh: 可用率, en: Uptime}, metrics: [pulse_uptime],
       explain: "Share of health checks that succeeded; send an `uptime_check` event with properties.up = 1 or 0."}
    - {name: latency, kind: category, label: {zh: 延迟, en: Latency}, metrics: [pulse_latency_ms],
       explain: "Mean response time; send `request` events with properties.latency_ms."}
    - {name: seven_day_active, kind: category, label: {zh: 七日活跃, en: Seven-day active users}, metrics: [pulse_wau],
       explain: "Distinct users active in the week."}
    - {name: earnings, kind: category, label: {zh: 收入, en: Earnings}, metrics: [pulse_earnings],
       explain: "Paid order amount; use MRR instead for a subscription business."}
""",
        [
            _metric("pulse_page_views", "页面浏览量", "Page views", "view 事件数 / number of view events",
                    _COUNT_EVENT.format(e="view"), "Placeholder: count of page-view events."),
            _metric("pulse_uptime", "可用率", "Uptime", "uptime_check 的 properties.up 平均值 / mean of properties.up",
                    "type: simple\ntable: events\nagg: avg\ncolumn: properties.up\nformat: percent\nwhere: {event: uptime_check}",
                    "Placeholder: needs `uptime_check` events from your monitoring."),
            _metric("pulse_latency_ms", "平均延迟", "Latency (ms)", "request 事件 properties.latency_ms 平均值",
                    "type: simple\ntable: events\nagg: avg\ncolumn: properties.latency_ms\nunit: ms\ndirection: lower\nwhere: {event: request}",
                    "Placeholder: needs `request` events with latency_ms."),
            _metric("pulse_wau", "周活跃用户", "Seven-day active users", "自然周内去重活跃用户",
                    _ACTIVE + "\ngrain: week", "Distinct users with any event in the week."),
            _metric("pulse_earnings", "收入", "Earnings", "已支付订单金额 / paid order amount",
                    _GMV, "Paid orders' amount."),
        ],
    )
    heart = (
        """system:
  framework: heart
  title: HEART — 用户体验指标 (user-centred); each category goes Goal → Signal → Metric
  nodes:
    - name: happiness
      kind: category
      label: {zh: 愉悦度, en: Happiness}
      explain: "Goal: users like the product. Signal: survey answers. Metric: mean score."
      metrics: [heart_satisfaction]
    - name: engagement
      kind: category
      label: {zh: 参与度, en: Engagement}
      explain: "Goal: users come often. Signal: sessions. Metric: sessions per active user."
      metrics: [heart_sessions_per_user]
    - name: adoption
      kind: category
      label: {zh: 接受度, en: Adoption}
      explain: "Goal: new users start using it. Signal: sign-ups. Metric: new users."
      metrics: [heart_new_users]
    - name: retention
      kind: category
      label: {zh: 留存, en: Retention}
      explain: "Goal: users come back. Signal: activity after sign-up. Metric: day-7 retention."
      metrics: [heart_retention_d7]
    - name: task_success
      kind: category
      label: {zh: 任务完成, en: Task success}
      explain: "Goal: users finish what they came for. Signal: checkout → pay. Metric: share who pay within a day."
      metrics: [heart_checkout_success]
""",
        [
            _metric("heart_satisfaction", "满意度", "Satisfaction", "survey 事件 properties.score 平均值",
                    "type: simple\ntable: events\nagg: avg\ncolumn: properties.score\nwhere: {event: survey}",
                    "Placeholder: send `survey` events with properties.score (e.g. 1–5)."),
            _metric("heart_sessions", "会话数", "Sessions", "去重 session_id",
                    "type: simple\ntable: events\nagg: count_distinct\ncolumn: session_id", "Distinct sessions."),
            _metric("heart_active_users", "活跃用户", "Active users", "有事件的去重用户", _ACTIVE, "Distinct active users."),
            _metric("heart_sessions_per_user", "人均会话", "Sessions per user", "会话数 ÷ 活跃用户",
                    "type: ratio\nnumerator: heart_sessions\ndenominator: heart_active_users", "A ratio: computed on sums."),
            _metric("heart_new_users", "新增用户", "New users", "first_seen 在周期内的用户",
                    "type: simple\ntable: users\nagg: count", "Users first seen in the period."),
            _metric("heart_retention_d7", "7日留存", "Day-7 retention", "新用户第 7 天有事件的比例",
                    "type: conversion\nformat: percent\nfrom: {table: users}\nto: {table: events}\nwithin_days: 7\non_day: 7",
                    "Replace `events` by a key action to measure retention on it."),
            _metric("heart_checkout_success", "结算成功率", "Checkout success", "checkout 后 1 天内 pay 的用户比例",
                    "type: conversion\nformat: percent\nfrom: {table: events, where: {event: checkout}}\nto: {table: events, where: {event: pay}}\nwithin_days: 1",
                    "Task = checkout → pay; put your own task's start and end events."),
        ],
    )
    gsm = (
        """system:
  framework: gsm
  title: GSM — 目标 → 信号 → 指标 (goal-centred). Prefer ratios and per-user values, few core metrics.
  nodes:
    - name: grow_revenue
      kind: goal
      label: {zh: 提升收入, en: Grow revenue}
      explain: "Goal: what the business wants. Replace with your goal."
      children:
        - name: more_buyers
          kind: signal
          label: {zh: 更多访客下单, en: More visitors buy}
          explain: "Signal: the behaviour that shows progress toward the goal."
          metrics: [gsm_conversion]
        - name: bigger_baskets
          kind: signal
          label: {zh: 客单价提升, en: Bigger baskets}
          explain: "Signal: each buyer spends more."
          metrics: [gsm_revenue_per_buyer]
    - name: keep_users
      kind: goal
      label: {zh: 留住用户, en: Keep users}
      explain: "Goal: users return."
      children:
        - name: users_return
          kind: signal
          label: {zh: 用户回访, en: Users return}
          metrics: [gsm_retention_d7]
""",
        [
            _metric("gsm_visitors", "访客", "Visitors", "有事件的去重用户", _ACTIVE, "Denominator of conversion."),
            _metric("gsm_buyers", "买家", "Buyers", "已支付订单的去重用户",
                    "type: simple\ntable: orders\nagg: count_distinct\ncolumn: user_id\nwhere: {status: [paid, refunded]}", "Buyers."),
            _metric("gsm_revenue", "收入", "Revenue", "已支付订单金额", _GMV + "\ntree: {kind: multiplicative, children: [gsm_visitors, gsm_conversion, gsm_revenue_per_buyer]}",
                    "The goal's number; its tree links it to the signals' metrics."),
            _metric("gsm_conversion", "转化率", "Conversion", "买家 ÷ 访客",
                    "type: ratio\nformat: percent\nnumerator: gsm_buyers\ndenominator: gsm_visitors", "Metric of the 'more buyers' signal."),
            _metric("gsm_revenue_per_buyer", "客单价", "Revenue per buyer", "收入 ÷ 买家",
                    "type: ratio\nformat: currency\nnumerator: gsm_revenue\ndenominator: gsm_buyers", "Metric of the 'bigger baskets' signal."),
            _metric("gsm_retention_d7", "7日留存", "Day-7 retention", "新用户第 7 天回访比例",
                    "type: conversion\nformat: percent\nfrom: {table: users}\nto: {table: events}\nwithin_days: 7\non_day: 7", "Metric of 'users return'."),
        ],
    )
    aarrr = (
        """system:
  framework: aarrr
  title: AARRR — 海盗模型 (acquisition → activation → retention → revenue → referral)
  nodes:
    - {name: acquisition, kind: stage, label: {zh: 获客, en: Acquisition}, metrics: [aarrr_new_users],
       explain: "New users by channel: compare with `--by channel`."}
    - {name: activation, kind: stage, label: {zh: 激活, en: Activation}, metrics: [aarrr_activation],
       explain: "Share of new users who do the key action within a day; put your 'aha' event."}
    - {name: retention, kind: stage, label: {zh: 留存, en: Retention}, metrics: [aarrr_retention_d7]}
    - {name: revenue, kind: stage, label: {zh: 变现, en: Revenue}, metrics: [aarrr_revenue]}
    - {name: referral, kind: stage, label: {zh: 推荐, en: Referral}, metrics: [aarrr_invites],
       explain: "Send an `invite` event when a user invites someone."}
""",
        [
            _metric("aarrr_new_users", "新增用户", "New users", "first_seen 在周期内的用户",
                    "type: simple\ntable: users\nagg: count\ndimensions: [channel]", "Acquisition."),
            _metric("aarrr_activation", "激活率", "Activation rate", "新用户 1 天内完成关键行为的比例",
                    "type: conversion\nformat: percent\nfrom: {table: users}\nto: {table: events, where: {event: add_to_cart}}\nwithin_days: 1\ndimensions: [channel]",
                    "Placeholder key action: add_to_cart."),
            _metric("aarrr_retention_d7", "7日留存", "Day-7 retention", "新用户第 7 天回访比例",
                    "type: conversion\nformat: percent\nfrom: {table: users}\nto: {table: events}\nwithin_days: 7\non_day: 7\ndimensions: [channel]", "Retention."),
            _metric("aarrr_revenue", "收入", "Revenue", "已支付订单金额", _GMV + "\ndimensions: [channel]", "Revenue."),
            _metric("aarrr_invites", "邀请数", "Invites", "invite 事件数", _COUNT_EVENT.format(e="invite"), "Placeholder: needs `invite` events."),
        ],
    )
    north = (
        """system:
  framework: north-star
  title: North Star — 北极星指标与输入指标
  nodes:
    - name: north_star
      kind: north_star
      label: {zh: 北极星指标, en: North Star}
      explain: "One number that captures the value customers get. Placeholder: weekly buyers."
      metrics: [ns_weekly_buyers]
      children:
        - {name: breadth, kind: input, label: {zh: 广度, en: Breadth}, metrics: [ns_weekly_active], explain: "How many use it."}
        - {name: depth, kind: input, label: {zh: 深度, en: Depth}, metrics: [ns_orders_per_buyer], explain: "How much each uses it."}
        - {name: frequency, kind: input, label: {zh: 频次, en: Frequency}, metrics: [ns_sessions], explain: "How often."}
""",
        [
            _metric("ns_weekly_buyers", "周买家数", "Weekly buyers", "自然周内已支付订单的去重用户",
                    "type: simple\ntable: orders\nagg: count_distinct\ncolumn: user_id\ngrain: week\nwhere: {status: [paid, refunded]}",
                    "Placeholder North Star."),
            _metric("ns_weekly_active", "周活跃", "Weekly active users", "自然周内去重活跃用户", _ACTIVE + "\ngrain: week", "Breadth."),
            _metric("ns_orders", "订单数", "Orders", "已支付订单数",
                    "type: simple\ntable: orders\nagg: count\nwhere: {status: [paid, refunded]}", "Orders."),
            _metric("ns_orders_per_buyer", "人均订单", "Orders per buyer", "订单数 ÷ 周买家数",
                    "type: ratio\nnumerator: ns_orders\ndenominator: ns_weekly_buyers", "Depth."),
            _metric("ns_sessions", "会话数", "Sessions", "去重 session_id",
                    "type: simple\ntable: events\nagg: count_distinct\ncolumn: session_id", "Frequency."),
        ],
    )
    return {"pulse": pulse, "heart": heart, "gsm": gsm, "aarrr": aarrr, "north-star": north}


def framework_text(framework: str) -> str:
    tpl = _templates().get(framework)
    if tpl is None:
        raise YunyingError("metrics.unknown_framework", name=framework, frameworks=", ".join(FRAMEWORKS))
    system, metrics = tpl
    head = (
        f"# {framework.upper()} metric system scaffolded by `yunying metrics init`.\n"
        "# Every metric below is a working placeholder: replace events, owners and definitions\n"
        "# (统计口径) with your own. `yunying metrics list` shows the system as a tree.\n"
    )
    return head + system + "\nmetrics:\n" + "\n".join(metrics) + "\n"


def init_framework(settings: Settings, framework: str, force: bool = False) -> Path:
    text = framework_text(framework)
    registry_from_texts({f"system_{framework}.yaml": text})  # a scaffold must always validate
    folder = settings.resolve(settings.metrics.folder)
    path = folder / f"system_{framework.replace('-', '_')}.yaml"
    if path.exists() and not force:
        raise YunyingError("metrics.exists", path=str(path))
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class TreeLine(BaseModel):
    depth: int
    kind: str
    name: str
    label: str
    detail: str = ""


class SystemListing(BaseModel):
    lines: list[TreeLine]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [t("metrics.col.name"), t("metrics.col.kind"), t("metrics.col.label"), t("metrics.col.definition")]
        return headers, [["  " * ln.depth + ln.name, ln.kind, ln.label, ln.detail] for ln in self.lines]


def list_system(registry: Registry) -> SystemListing:
    """Systems by framework (goal → signal → metric…), then the rest grouped by library."""
    lang = get_language()
    lines: list[TreeLine] = []
    placed: set[str] = set()

    def metric_line(name: str, depth: int) -> None:
        m = registry.get(name)
        placed.add(name)
        lines.append(TreeLine(depth=depth, kind="metric:" + m.type, name=name, label=m.label_for(lang), detail=m.definition))

    def node(n: SystemNode, depth: int) -> None:
        lines.append(TreeLine(depth=depth, kind=n.kind or "node", name=n.name,
                              label=n.label.get(lang) if n.label else n.name, detail=n.explain))
        for mname in n.metrics:
            metric_line(mname, depth + 1)
        for c in n.children:
            node(c, depth + 1)

    for s in registry.systems:
        lines.append(TreeLine(depth=0, kind="framework", name=s.framework, label=s.title, detail=s.file))
        for n in s.nodes:
            node(n, 1)
    groups: dict[str, list[str]] = {}
    for name, m in registry.metrics.items():
        if name not in placed:
            groups.setdefault(m.library or "project", []).append(name)
    for g, names in groups.items():
        lines.append(TreeLine(depth=0, kind="library", name=g, label=t("metrics.library." + g)))
        for name in names:
            metric_line(name, 1)
    return SystemListing(lines=lines)
