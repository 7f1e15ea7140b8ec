"""loadgen_harness package."""
