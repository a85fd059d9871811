"""The math: memory (Table II), time (Eq. 4-7), cost (Eq. 2-3), the candidate table, and the
MILP and CP-SAT encodings of the selection problem. Reads only :mod:`infersave.catalog`."""
