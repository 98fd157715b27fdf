"""nbgrader configuration for the leaklab course: used by `leaklab grade`, `leaklab build` and instructors.

Every line here is about grading a lab whose subject is code that never exits.
"""

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from leaklab.grading.settings import KERNEL_RUN

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "leaklab"

# How the kernel runs a submission (timeouts, shutdown, tracebacks): the same settings `leaklab grade`
# uses when it runs a notebook itself; each is explained in src/leaklab/grading/settings.py.
for name, value in KERNEL_RUN.items():
    setattr(c.Execute, name, value)

# nbgrader's kernels (Validate in the lab, `nbgrader autograde`) talk over loopback TCP, encrypted with
# CurveZMQ keys made per kernel: no plain-text warning in the learner's or the grader's output.
c.KernelManager.transport_encryption = "auto"

# nbgrader's feedback shows hidden tests unless they are cleared first.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
