from jobs.table import LandingFiles, Quarantine, Table

TABLE = Table(
    name="bronze.orders", inputs={"orders": LandingFiles("orders")}, transform=lambda orders: orders,
    bad_rows=Quarantine("bronze.orders"),
)
