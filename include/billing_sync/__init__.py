"""Huntress → ConnectWise billing sync for Airflow: the package (docs/architecture.md maps its modules)."""
