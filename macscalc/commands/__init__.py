"""What the CLI commands compute: budgets, pick, compare, explain, drift."""
