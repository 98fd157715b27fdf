"""`leaklab autograde`: a whole class graded in parallel, resumably, one process per submission.

The parts: `discovery` finds the submissions, `job` grades one in a forked process, `processes` limits
and cleans up that process, `records` writes each outcome to the course, `scheduler` runs the jobs
here, and `cluster` on the workers of a Dask cluster.
"""
