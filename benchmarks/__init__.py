"""Speed measurements, run on demand: ``python -m benchmarks`` runs them all (see run_all.py);
each module also runs alone (``python -m benchmarks.<name>``)."""
