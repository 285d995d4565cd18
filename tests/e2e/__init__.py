"""End-to-end suites: a real browser on the real Prefect UI, PostgreSQL, workers, basic auth."""
