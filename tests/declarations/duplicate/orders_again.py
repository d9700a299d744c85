from jobs.table import LandingFiles, Table

TABLE = Table(name="bronze.orders", inputs={"raw": LandingFiles("orders")}, transform=lambda raw: raw)
