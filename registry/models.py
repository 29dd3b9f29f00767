"""What runs: models, versions, benchmarks and deployment gates (built on the Foundation)."""
