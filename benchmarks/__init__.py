"""Load generators and reference peers for measuring the chat server (never run as tests)."""
