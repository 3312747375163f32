"""Operations tools (运营工具): incentive tools, ledger, outbox, points and tiers.

The service API (``yunying.engage.service``, ``yunying.engage.points``,
``yunying.engage.outbox``) takes and returns pydantic models so the CLI and the web app
wrap it without logic of their own.
"""
