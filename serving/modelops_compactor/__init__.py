"""The log compactor: closed prediction logs into Parquet datasets (a CronJob)."""
