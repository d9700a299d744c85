from jobs.table import ExternalTable

TABLE = ExternalTable(
    name="ingest.nation",
    description="TPC-H nations, kept as a Delta table by an ingestion tool outside the platform.",
)
