"""Runs, sweeps (Table 1, Figure 2), the run store and reports."""
