"""Reading user input: YAML with line numbers, Timeloop formats and dse's native format."""
