"""What went wrong: incidents and post-mortems (built on the Foundation)."""
