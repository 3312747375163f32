"""Operations tools on the command line: ``yunying tool …``, ``yunying points …``, ``yunying tier …``.

A thin adapter over ``yunying.engage``: every command builds the same pydantic request the
HTTP API takes and prints the result (``--format json`` is the API document).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel, ValidationError

from yunying.cli.common import FormatOpt, OutputFormat, ProjectOpt, emit, settings_for
from yunying.errors import YunyingError

if TYPE_CHECKING:
    from yunying.engage import service as S
    from yunying.engage.schemas import RedeemRequest

AtOpt = Annotated[
    dt.datetime | None,
    typer.Option("--at", help="When (UTC), e.g. 2026-11-11T00:00:00; default now.", show_default=False),
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--key", "-k", help="Idempotency key: a replay returns the original result (default: new).",
                 show_default=False),
]


def _key(k: str | None) -> str:
    return k or uuid.uuid4().hex


def _read(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise YunyingError("engage.bad_json", path=str(path), reason=str(e)) from e


def _model(cls: type[BaseModel], data: Any, path: str) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise YunyingError("engage.bad_json", path=path, reason=f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from e


def _elig(members: Path | None, segment: str | None, first_seen: dt.datetime | None, user: str) -> S.StaticEligibility | None:
    from yunying.engage import service as S

    if members is None and first_seen is None:
        return None
    ids: set[str] = set()
    if members is not None:
        try:
            ids = {ln.strip() for ln in members.read_text(encoding="utf-8").splitlines() if ln.strip()}
        except OSError as e:
            raise YunyingError("engage.bad_json", path=str(members), reason=str(e)) from e
    return S.StaticEligibility(
        members={segment: ids} if segment else {},
        first_seen_at={user: first_seen} if first_seen else {},
    )


def _tool_segment(url: str, tool_id: str) -> str | None:
    from yunying.engage import service as S

    seg = S.get_tool(url, tool_id).rules.get("segment")
    return str(seg) if seg else None


MembersOpt = Annotated[
    Path | None, typer.Option("--segment-members", help="File of user ids in the tool's segment (one per line).")
]
FirstSeenOpt = Annotated[
    dt.datetime | None, typer.Option("--first-seen", help="When the user was first seen (UTC), for new-user rules.")
]

GrantOpt = Annotated[str | None, typer.Option("--grant", help="Grant id of the issued coupon.")]
OrderFileOpt = Annotated[Path | None, typer.Option("--order-file", help="Order as JSON/YAML (order_id, lines).")]
OrderIdOpt = Annotated[str | None, typer.Option("--order-id", help="Order id (with --amount).")]
AmountOpt = Annotated[Decimal | None, typer.Option("--amount", help="Order amount (one line).")]
ProductOpt = Annotated[str, typer.Option("--product", help="Product of the one-line order.")]
CategoryOpt = Annotated[str, typer.Option("--category", help="Category of the one-line order.")]
QtyOpt = Annotated[int, typer.Option("--quantity", "-q", min=1, help="Units (flash sale, privileged offer).")]
PrincipalOpt = Annotated[Decimal | None, typer.Option("--principal", help="Invested principal (加息券).")]



def register(app: typer.Typer) -> None:
    tool = typer.Typer(help="Incentive tools: vouchers, cashback, flash sales, lotteries… / 运营工具。",
                       no_args_is_help=True)
    points = typer.Typer(help="Points: earn, spend, expire, statement. / 积分。", no_args_is_help=True)
    tier = typer.Typer(help="Membership tiers. / 会员等级。", no_args_is_help=True)
    app.add_typer(tool, name="tool")
    app.add_typer(points, name="points")
    app.add_typer(tier, name="tier")

    @tool.command("create")
    def create_cmd(spec: Path, project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """Create a tool from a YAML or JSON spec file. / 创建工具。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S
        from yunying.engage.schemas import ToolSpec

        url = open_appdb(settings_for(project))
        emit(S.create_tool(url, _model(ToolSpec, _read(spec), str(spec))), fmt)

    @tool.command("list")
    def list_cmd(
        project: ProjectOpt = None,
        campaign: Annotated[str | None, typer.Option(help="Only this campaign's tools.")] = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """List tools with stock, budget and counters. / 工具列表。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S

        url = open_appdb(settings_for(project))
        emit(S.list_tools(url, campaign), fmt)

    @tool.command("show")
    def show_cmd(tool_id: str, project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """One tool. / 工具详情。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S

        url = open_appdb(settings_for(project))
        emit(S.get_tool(url, tool_id), fmt)

    @tool.command("issue")
    def issue_cmd(
        tool_id: str,
        user: Annotated[str, typer.Option("--user", "-u", help="User id.")],
        key: KeyOpt = None,
        code: Annotated[str | None, typer.Option(help="One-time or shared code.")] = None,
        at: AtOpt = None,
        members: MembersOpt = None,
        first_seen: FirstSeenOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Issue a coupon to a user. / 发券。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S
        from yunying.engage.schemas import IssueRequest

        url = open_appdb(settings_for(project))
        elig = _elig(members, _tool_segment(url, tool_id), first_seen, user)
        emit(S.issue(url, IssueRequest(key=_key(key), tool_id=tool_id, user_id=user, code=code, at=at), elig), fmt)

    def _redeem_req(tool_id: str, user: str, key: str | None, grant: str | None, order_file: Path | None,
                    order_id: str | None, amount: Decimal | None, product: str, category: str, quantity: int,
                    principal: Decimal | None, at: dt.datetime | None) -> RedeemRequest:
        from yunying.engage.rules import Order, OrderLine
        from yunying.engage.schemas import RedeemRequest

        order = None
        if order_file is not None:
            order = _model(Order, _read(order_file), str(order_file))
        elif amount is not None:
            order = Order(order_id=order_id or uuid.uuid4().hex,
                          lines=[OrderLine(product_id=product, category=category, amount=amount)])
        return RedeemRequest(key=_key(key), tool_id=tool_id, user_id=user, grant_id=grant, order=order,
                             quantity=quantity, principal=principal, at=at)

    @tool.command("redeem")
    def redeem_cmd(
        tool_id: str,
        user: Annotated[str, typer.Option("--user", "-u", help="User id.")],
        key: KeyOpt = None,
        grant: GrantOpt = None,
        order_file: OrderFileOpt = None,
        order_id: OrderIdOpt = None,
        amount: AmountOpt = None,
        product: ProductOpt = "-",
        category: CategoryOpt = "",
        quantity: QtyOpt = 1,
        principal: PrincipalOpt = None,
        at: AtOpt = None,
        members: MembersOpt = None,
        first_seen: FirstSeenOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Redeem: use a coupon, buy in a flash sale, draw a lottery… / 核销。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S

        url = open_appdb(settings_for(project))
        req = _redeem_req(tool_id, user, key, grant, order_file, order_id, amount, product, category, quantity,
                          principal, at)
        emit(S.redeem(url, req, _elig(members, _tool_segment(url, tool_id), first_seen, user)), fmt)

    @tool.command("validate")
    def validate_cmd(
        tool_id: str,
        user: Annotated[str, typer.Option("--user", "-u", help="User id.")],
        grant: GrantOpt = None,
        order_file: OrderFileOpt = None,
        order_id: OrderIdOpt = None,
        amount: AmountOpt = None,
        product: ProductOpt = "-",
        category: CategoryOpt = "",
        quantity: QtyOpt = 1,
        principal: PrincipalOpt = None,
        at: AtOpt = None,
        members: MembersOpt = None,
        first_seen: FirstSeenOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Would a redemption succeed, for how much? Changes nothing. / 校验。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S

        url = open_appdb(settings_for(project))
        req = _redeem_req(tool_id, user, "validate", grant, order_file, order_id, amount, product, category,
                          quantity, principal, at)
        emit(S.validate(url, req, _elig(members, _tool_segment(url, tool_id), first_seen, user)), fmt)

    @tool.command("rollback")
    def rollback_cmd(
        redemption_id: str,
        key: KeyOpt = None,
        reason: Annotated[str, typer.Option(help="Why (refund, cancel…).")] = "refund",
        at: AtOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Roll a redemption back (refund). / 回滚（退款）。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S
        from yunying.engage.schemas import RollbackRequest

        url = open_appdb(settings_for(project))
        emit(S.rollback(url, RollbackRequest(key=_key(key), redemption_id=redemption_id, reason=reason, at=at)), fmt)

    @tool.command("convert")
    def convert_cmd(
        redemption_id: str,
        order_id: Annotated[str, typer.Option("--order-id", help="The paid order.")],
        key: KeyOpt = None,
        at: AtOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Record a trial class converting to paid. / 体验课转化。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S
        from yunying.engage.schemas import ConvertRequest

        url = open_appdb(settings_for(project))
        emit(S.convert(url, ConvertRequest(key=_key(key), redemption_id=redemption_id, order_id=order_id, at=at)), fmt)

    @tool.command("settle")
    def settle_cmd(at: AtOpt = None, project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """Pay the trial-credit and rate-boost yields due. / 结算到期收益。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S

        url = open_appdb(settings_for(project))
        emit(S.settle(url, at), fmt)

    @tool.command("codes")
    def codes_cmd(
        tool_id: str,
        count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many codes.")],
        out: Annotated[Path | None, typer.Option("--out", help="Write the codes to this file.")] = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Generate unique one-time codes in bulk. / 批量生成券码。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S

        url = open_appdb(settings_for(project))
        res = S.generate_codes(url, tool_id, count, show=out is not None)
        if out is not None:
            out.write_text("\n".join(res.codes) + "\n", encoding="utf-8")
            res = res.model_copy(update={"codes": []})
        emit(res, fmt)

    @tool.command("ledger")
    def ledger_cmd(
        prefix: Annotated[str, typer.Option(help="Only accounts starting with this.")] = "",
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Ledger balances and a check that every transaction sums to zero. / 账本。"""
        from yunying.appdb import open_appdb
        from yunying.engage import service as S

        url = open_appdb(settings_for(project))
        emit(S.check_ledger(url, prefix), fmt)

    @tool.command("flush")
    def flush_cmd(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """Send pending tool events to the warehouse (idempotent). / 事件写入数仓。"""
        from yunying.engage.outbox import flush_outbox

        emit(flush_outbox(settings_for(project)), fmt)

    @points.command("rule")
    def rule_cmd(
        event: str,
        pts: Annotated[int, typer.Option("--points", min=1, help="Points per event, or per currency unit.")],
        per_amount: Annotated[bool, typer.Option("--per-amount", help="Points per whole unit of the amount.")] = False,
        expiry_days: Annotated[int, typer.Option(min=1, help="Days until earned points expire.")] = 365,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Set how an event earns points. / 积分规则。"""
        from yunying.appdb import open_appdb
        from yunying.engage import points as P

        url = open_appdb(settings_for(project))
        emit(P.set_rule(url, P.RuleSpec(event=event, points=pts, per_amount=per_amount, expiry_days=expiry_days)), fmt)

    @points.command("earn")
    def earn_cmd(
        user: str,
        key: KeyOpt = None,
        event: Annotated[str, typer.Option(help="Event with a points rule.")] = "manual",
        amount: Annotated[Decimal | None, typer.Option(help="Order amount for per-amount rules.")] = None,
        pts: Annotated[int | None, typer.Option("--points", min=1, help="Explicit points.")] = None,
        at: AtOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Credit points. / 获得积分。"""
        from yunying.appdb import open_appdb
        from yunying.engage import points as P

        url = open_appdb(settings_for(project))
        emit(P.earn(url, P.EarnRequest(key=_key(key), user_id=user, event=event, amount=amount, points=pts, at=at)), fmt)

    @points.command("spend")
    def spend_cmd(
        user: str,
        pts: Annotated[int, typer.Option("--points", min=1, help="Points to spend.")],
        key: KeyOpt = None,
        reason: Annotated[str, typer.Option(help="What for.")] = "redeem",
        at: AtOpt = None,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Spend points, oldest-expiring first. / 消耗积分。"""
        from yunying.appdb import open_appdb
        from yunying.engage import points as P

        url = open_appdb(settings_for(project))
        emit(P.spend(url, P.SpendRequest(key=_key(key), user_id=user, points=pts, reason=reason, at=at)), fmt)

    @points.command("expire")
    def expire_cmd(at: AtOpt = None, project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """Expire lots past their date (run daily). / 积分过期。"""
        from yunying.appdb import open_appdb
        from yunying.engage import points as P

        url = open_appdb(settings_for(project))
        emit(P.expire(url, at), fmt)

    @points.command("statement")
    def statement_cmd(user: str, at: AtOpt = None, project: ProjectOpt = None,
                      fmt: FormatOpt = OutputFormat.table) -> None:
        """A user's points statement. / 积分明细。"""
        from yunying.appdb import open_appdb
        from yunying.engage import points as P

        url = open_appdb(settings_for(project))
        emit(P.statement(url, user, at), fmt)

    @tier.command("set")
    def tier_set_cmd(
        levels: Annotated[list[str], typer.Argument(help="NAME=MIN_POINTS …, e.g. 普通=0 银卡=1000 金卡=5000")],
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Define the tier ladder. / 设置会员等级。"""
        from yunying.appdb import open_appdb
        from yunying.engage import points as P

        specs = []
        for lv in levels:
            name, _, mp = lv.partition("=")
            if not mp.strip().isdigit():
                raise YunyingError("engage.bad_json", path=lv, reason="NAME=MIN_POINTS")
            specs.append(P.TierSpec(name=name.strip(), min_points=int(mp)))
        url = open_appdb(settings_for(project))
        emit(P.TierLadder(tiers=P.set_tiers(url, specs)), fmt)

    @tier.command("evaluate")
    def tier_eval_cmd(
        at: AtOpt = None,
        window_days: Annotated[int, typer.Option(min=1, help="Qualifying points are earned in this window.")] = 365,
        hold_days: Annotated[int, typer.Option(min=0, help="Days a tier is kept before a downgrade.")] = 30,
        project: ProjectOpt = None,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Scheduled tier run: upgrades and downgrades. / 会员等级评定。"""
        from yunying.appdb import open_appdb
        from yunying.engage import points as P

        url = open_appdb(settings_for(project))
        emit(P.evaluate_tiers(url, at, window_days, hold_days), fmt)
