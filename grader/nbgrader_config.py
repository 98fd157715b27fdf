"""nbgrader configuration for the leaklab course: used by `leaklab grade`, `leaklab build` and instructors.

Every line here is about grading a lab whose subject is code that never exits.
"""

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "leaklab"

# A cell that runs longer than this is stopped; every leaklab cell takes well under a second.
c.ExecutePreprocessor.timeout = 60
# Submissions may leave threads behind on purpose (that is the lesson): don't wait politely for them.
c.Execute.shutdown_kernel = "immediate"
# Minimal tracebacks: an assertion's message reaches the learner, the hidden test's code does not.
c.Execute.extra_arguments = ["--InteractiveShell.xmode=Minimal"]

# nbgrader's feedback shows hidden tests unless they are cleared first.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
