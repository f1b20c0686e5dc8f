"""What happened: the monitor's one event stream (samples, iterations, decisions)."""
