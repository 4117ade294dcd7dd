"""analysis: reads recorded runs (MLflow) and turns them into statistics, tables and figures. Never imports Ray."""
