from jobs.table import Table

TABLE = Table(name="gold.report", inputs={"sales": "silver.sales"}, transform=lambda sales: sales)
