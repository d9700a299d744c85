from jobs.table import Table

TABLE = Table(name="silver.first", inputs={"second": "silver.second"}, transform=lambda second: second)
