"""The process a run lives in: signals, the fast exit (shutdown), torch threads, determinism, the device, and
progress lines in the job's log."""
