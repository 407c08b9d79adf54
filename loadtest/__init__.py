"""Load testing: seeded generator with ground truth, load driver, report."""
