from jobs.table import Table

TABLE = Table(name="silver.second", inputs={"first": "silver.first"}, transform=lambda first: first)
