"""How long a test waits for a subprocess before calling it hung.

A guard against hangs, not a speed target (speed is measured by benchmarks/, never by tests): generous, so
that a slow or busy machine passes, and well under CI's 90 minutes. Tests import it (tests/ is on sys.path
under pytest)."""
HUNG_AFTER_S = 1800
