"""Reference implementations the benchmarks compare the chat server against."""
