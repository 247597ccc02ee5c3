"""The Postgres engine (asyncpg; docs/deploy.md says why this driver)."""
