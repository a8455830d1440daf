"""erp-slack-flows core: ERP source clients, entity tables, Slack rendering and sending, the
SQL outbox and audit store, and routing. Plain Python: nothing here imports Prefect."""

__all__ = ["__version__"]
__version__ = "0.1.0"
