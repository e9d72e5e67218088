"""Documents rendered as tables, JSON, CSV, Markdown and plots; rendering only renders."""
