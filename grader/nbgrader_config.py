"""nbgrader configuration for the leaklab course: used by `leaklab grade`, `leaklab build` and instructors.

Every line here is about grading a lab whose subject is code that never exits.
"""

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "leaklab"

# A cell that runs longer than this is interrupted and the notebook goes on; every leaklab cell takes
# well under a second, a test cell at most two isolated runs of 25 s each.
c.Execute.timeout = 60
# An answer that blocks the kernel's event loop leaves the kernel slow to answer after the interrupt:
# a late output is a failed cell, not a reason to give up on the whole notebook.
c.Execute.raise_on_iopub_timeout = False
# Submissions may leave threads behind on purpose (that is the lesson): don't wait politely for them.
c.Execute.shutdown_kernel = "immediate"
# Minimal tracebacks: an assertion's message reaches the learner, the hidden test's code does not.
c.Execute.extra_arguments = ["--InteractiveShell.xmode=Minimal"]

# nbgrader's feedback shows hidden tests unless they are cleared first.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
