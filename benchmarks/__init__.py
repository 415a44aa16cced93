"""Performance benchmarks of speechmapper (scripts, not tests): see ``benchmark.py``."""
