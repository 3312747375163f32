"""Review reports (复盘): experiment and campaign reviews rendered to HTML and PDF."""
