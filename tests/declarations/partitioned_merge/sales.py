from jobs.table import DailyPartitions, LandingFiles, Merge, Table

TABLE = Table(
    name="silver.sales", inputs={"sales": LandingFiles("sales")}, transform=lambda sales: sales,
    write=Merge(keys=("id",)), partitions=DailyPartitions("day", "2024-01-01", "2024-02-01"),
)
