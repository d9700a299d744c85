from jobs.table import LandingFiles, Table

TABLE = Table(name="bronze.orders", inputs={"orders": LandingFiles("orders")}, transform=lambda raw: raw)
