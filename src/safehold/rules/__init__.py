"""Rules: policy as data (YAML), validated with line numbers, evaluated per piece of content."""
