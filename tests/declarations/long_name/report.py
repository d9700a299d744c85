from jobs.table import LandingFiles, Table

# 110 characters as a Databricks task key (gold__...), over Databricks' 100.
TABLE = Table(name="gold." + "revenue_by_nation_region_segment_" * 3 + "daily", inputs={"sales": LandingFiles("sales")},
              transform=lambda sales: sales)
