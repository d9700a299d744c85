"""Where and how table jobs run. The only package that knows local vs Databricks."""
