"""Tests of the benchmark's own logic (the runs themselves need wrk and minutes: python -m bench.compare)."""
