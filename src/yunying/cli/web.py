"""Web commands: serve, user add|list|disable, apikey create|revoke|list, capture flush."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from yunying.cli.common import (
    FormatOpt,
    OutputFormat,
    ProjectOpt,
    console,
    emit,
    render_rows,
    settings_for,
)
from yunying.i18n import t

DEMO_EMAIL = "demo@yunying.local"
DEMO_PASSWORD = "yunying-demo"


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        project: ProjectOpt = None,
        host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
        port: Annotated[int | None, typer.Option(help="Port.")] = None,
        workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
        demo: Annotated[bool, typer.Option("--demo", help="Create the demo admin unless it exists (an existing one is left as it is).")] = False,
        flush_interval: Annotated[float, typer.Option(help="Seconds between capture flushes (0: never).")] = 10.0,
    ) -> None:
        """Start the web app and HTTP API. / 启动网页和 HTTP API。"""
        import uvicorn

        from yunying.appdb import open_appdb
        from yunying.web.accounts import ensure_user

        s = settings_for(project)
        url = open_appdb(s)
        h, p = host or s.web.host, port or s.web.port
        created = ensure_user(url, DEMO_EMAIL, DEMO_PASSWORD, "admin") if demo else False
        shown = "localhost" if h in ("0.0.0.0", "127.0.0.1") else h
        console.print(t("web.cli.serving", url=f"http://{shown}:{p}/"))
        if created:
            console.print(t("web.cli.demo_login", email=DEMO_EMAIL, password=DEMO_PASSWORD))
        elif demo:
            console.print(t("web.cli.demo_exists", email=DEMO_EMAIL))
        os.environ["YUNYING_PROJECT"] = str(s.project_dir)
        os.environ["YUNYING_WEB_FLUSH_INTERVAL"] = str(flush_interval)
        # The app itself decides whose X-Forwarded-For to believe (web.trusted_proxies);
        # uvicorn's own default would trust any local process.
        uvicorn.run(
            "yunying.web.app:app_from_env", factory=True, host=h, port=p, workers=workers,
            log_level="warning", access_log=False, proxy_headers=False,
        )

    user = typer.Typer(help="Users of the web app. / 网页用户。", no_args_is_help=True)
    app.add_typer(user, name="user")

    @user.command("add")
    def user_add(
        email: str,
        role: Annotated[str, typer.Option(help="admin, analyst, approver, operator or viewer.")] = "viewer",
        password: Annotated[str | None, typer.Option(help="Asked for when left out.")] = None,
        name: Annotated[str, typer.Option(help="Display name.")] = "",
        project: ProjectOpt = None,
    ) -> None:
        """Add a user. / 添加用户。"""
        from yunying.appdb import open_appdb
        from yunying.web.accounts import add_user

        s = settings_for(project)
        pw = password or typer.prompt(t("web.cli.password_prompt"), hide_input=True, confirmation_prompt=True)
        u = add_user(open_appdb(s), email, pw, role, name)
        console.print(t("web.cli.user_added", email=u.email, role=u.role))

    @user.command("list")
    def user_list(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """List users. / 用户列表。"""
        from yunying.appdb import open_appdb
        from yunying.web.accounts import list_users

        s = settings_for(project)
        rows = [[u.id, u.email, u.role, u.active, u.created_at.isoformat(sep=" ", timespec="seconds")] for u in list_users(open_appdb(s))]
        render_rows(["id", t("web.email"), t("web.role"), t("web.active"), t("web.created")], rows, fmt)

    @user.command("disable")
    def user_disable(email: str, project: ProjectOpt = None) -> None:
        """Disable a user and end their sessions. / 停用用户。"""
        from yunying.appdb import open_appdb
        from yunying.web.accounts import update_user

        s = settings_for(project)
        u = update_user(open_appdb(s), email, active=False)
        console.print(t("web.cli.user_disabled", email=u.email))

    key = typer.Typer(help="API keys. / API 密钥。", no_args_is_help=True)
    app.add_typer(key, name="apikey")

    @key.command("create")
    def key_create(
        name: str,
        scope: Annotated[str, typer.Option(help="capture, read or full.")] = "capture",
        user: Annotated[
            str | None,
            typer.Option("--user", help="The user (email) the key acts for: a full key may approve when that user's role may."),
        ] = None,
        project: ProjectOpt = None,
    ) -> None:
        """Create an API key; the secret is printed once. / 创建 API 密钥。"""
        from yunying.appdb import open_appdb
        from yunying.web.accounts import create_api_key, get_user

        s = settings_for(project)
        url = open_appdb(s)
        actor = get_user(url, user).email if user else "cli"
        k, secret = create_api_key(url, name, scope, actor=actor)
        console.print(t("web.cli.key_created", id=k.id, scope=k.scope))
        typer.echo(secret)

    @key.command("revoke")
    def key_revoke(key_id: int, project: ProjectOpt = None) -> None:
        """Revoke an API key. / 撤销 API 密钥。"""
        from yunying.appdb import open_appdb
        from yunying.web.accounts import revoke_api_key

        s = settings_for(project)
        revoke_api_key(open_appdb(s), key_id)
        console.print(t("web.cli.key_revoked", id=key_id))

    @key.command("list")
    def key_list(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """List API keys (never their secrets). / API 密钥列表。"""
        from yunying.appdb import open_appdb
        from yunying.web.accounts import list_api_keys

        s = settings_for(project)
        rows = [
            [k.id, k.name, k.prefix, k.scope, k.created_at.isoformat(sep=" ", timespec="seconds"),
             k.revoked_at.isoformat(sep=" ", timespec="seconds") if k.revoked_at else ""]
            for k in list_api_keys(open_appdb(s))
        ]
        render_rows(["id", t("web.name"), t("web.prefix"), t("web.scope"), t("web.created"), t("web.revoked")], rows, fmt)

    cap = typer.Typer(help="Event capture journal. / 事件采集。", no_args_is_help=True)
    app.add_typer(cap, name="capture")

    @cap.command("flush")
    def capture_flush(project: ProjectOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
        """Move captured events into the warehouse (idempotent). / 将采集的事件写入数据仓库。"""
        from yunying.web.capture import Journal, flush, journal_path

        s = settings_for(project)
        j = Journal(journal_path(s))
        try:
            res = flush(s, j)
        finally:
            j.close()
        if fmt == OutputFormat.table:
            console.print(t("web.cli.flushed", moved=res.moved, present=res.already_present, pending=res.pending))
        else:
            emit(res, fmt)
