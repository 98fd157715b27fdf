"""Every answer of the lessons' test answers with the verdict it must get: right (full marks) or wrong or
evasive (less). `make bench-verdicts` grades them all under load; the verify-cell test runs the wrong
ones through each lesson's verify cell."""

from __future__ import annotations

import answers
import answers_02
import answers_03
import answers_04
import answers_05
import answers_06
import answers_07
import answers_08

# Per lesson: the module of its answers, the answer cell they replace, and which of them are right (full
# marks) and which wrong or evasive (less). Every answer the tests give a verdict is here.
CATALOG: dict[str, list[tuple[object, str, str, str]]] = {
    "01_forgotten_cancel": [
        (
            answers,
            "fix",
            "BUFFERED TASK_GROUP TASK_GROUP_WITH_THREAD DIRECT WAIT_FOR DECORATED PARTIAL CALLABLE_OBJECT",
            "LEAKY BLOCKS_CALLER NO_CHILD UNREFERENCED HANGS PATCHED_COUNTERS STUB PATCHED_BUILTINS "
            "HIDDEN_FROM_REGISTRY STOPS_TRACEMALLOC IN_A_SUBPROCESS REWRITES_THE_WITNESS EARLY_TIMEOUT "
            "JOIN_WITH_TIMEOUT TASK_LIES_DONE SHORT_DEADLINES_ONLY TASKLESS_CHILD WAITS_ON_THE_CLIENT",
        )
    ],
    "02_skipped_stop": [
        (
            answers_02,
            "fix",
            "FIXED SENTINEL CONDITION EXPONENTIAL_BACKOFF FROM_A_FACTORY",
            "LEAKY SIGNALS_ONLY JOINS_BUT_SLEEPS SLEEPS_IN_BACKOFF DROPS_FAILED_JOBS SPINS STUB NO_BACKOFF "
            "STOP_LIES SLEEPS_NOT_JOIN FIXED_BACKOFF FIXED_BACKOFF_10MS MADE_UP_RESULT DRAINS_ON_STOP TAKES_A_BATCH "
            "ERRORS_RESET_ON_SUCCESS",
        )
    ],
    "03_hung_call": [
        (
            answers_03,
            "fix",
            "FIXED THREAD_CLOSES_ON_CANCEL DECORATED_NO_WRAPS LAMBDA",
            "LEAKY CLOSES_ON_TIMEOUT_ONLY TIMES_OUT_BUT_KEEPS_SOCKET WAIT_FOR_THREAD GIVES_UP_AT_ONCE STUB MADE_UP "
            "CLOSES_UNLESS_IT_FAILS RETRIES_A_HUNG_CALL SOCKET_TIMEOUT SWALLOWS_RESET FIXED_TIMEOUT "
            "SHORT_DEADLINES_ONLY LETS_GO_UNCLOSED",
        )
    ],
    "04_lifeless_pool": [
        (
            answers_04,
            "fix",
            "FIXED EXECUTOR THREAD_SUBCLASS_JOINS",
            "NO_JOIN SLEEPS_INSTEAD_OF_JOIN EXIT_ONLY_SIGNALS DROPS_QUEUED_JOBS DIES_ON_FAILURE NEVER_STOPS "
            "JOINS_FIRST_ONLY SHARED_RESULTS LOWLEVEL_THREADS STUB STOPS_ONLY_ON_SUCCESS SWALLOWS_ERRORS "
            "HANDLES_IN_SUBMIT LAZY_RESULTS MADE_UP_RESULTS MADE_UP_IN_STOP ONE_WORKER REPLACES_DEAD_WORKER "
            "LYING_THREADS",
        )
    ],
    "05_mystery_service": [
        (
            answers_05,
            "fix",
            "FIXED REPLY_OBJECT CONTEXT_MANAGER WAITS_WITH_WAIT FIXED_TRIED_BY_HAND NOTES_GAVE_UP_IDS",
            "READER_ONLY LEAKY TIMES_OUT RESOLVES_BUT_KEEPS_ENTRY FAILS_EVERY_CALL STUB CHEAT_LOCAL_PRICE "
            "LATE_REPLY_KILLS_READER HIDDEN_TABLE PRICE_WITHOUT_REPLY REUSES_IDS MAKES_UP_THE_ERROR SENDS_TWICE "
            "REPLY_WORKED_OUT PARKS_ON_THE_BACKEND",
        ),
        (
            answers_05,
            "diagnosis",
            "DIAGNOSIS_QUALIFIED DIAGNOSIS_TUPLE DIAGNOSIS_COMPUTED DIAGNOSIS_AWAITED DIAGNOSIS_FROM_SECTION_2",
            "DIAGNOSIS_OUTER_FRAME DIAGNOSIS_WRONG_FUNCTION DIAGNOSIS_WRONG_LINE DIAGNOSIS_LINE_AS_STR DIAGNOSIS_STUB "
            "DIAGNOSIS_FROM_THE_GRADER",
        ),
    ],
    "06_leak_monitor": [
        (
            answers_06,
            "fix",
            "FIXED WINDOW",
            "FLOOD SILENT_RECOVERY NEVER_REARMS NO_SUSTAIN NOT_CONSECUTIVE NO_JOIN LYING_THREAD NEVER_STOPPED "
            "SLEEP_LOOP NEVER_WARNS GE_THRESHOLD JOIN_WITH_SHORT_TIMEOUT RECOVERS_ONLY_UNDER LOWLEVEL_THREAD STUB "
            "FAST_CADENCE THREAD_FLOODS SLEEPS_UNLESS_LONG POLLS_IN_SLICES NO_RETURN",
        )
    ],
    "07_static_checks": [
        (
            answers_07,
            "fix",
            "FIXED",
            "FLAGS_EVERY_SLEEP ONLY_CONTINUE MISSES_ASYNC ONLY_WHILE_TRUE CRASHES_WITHOUT_LOOP ANY_ENCLOSING "
            "NO_SCOPE_RESET WALK_INTO_DEFS CHEAT_IMPORT SAYS_NOTHING STUB ANY_NOT_CALL READS_THE_KEY REGEX_LOOP_TEST "
            "UNSORTED_DUPLICATES ONLY_DEF_RESETS FLAGS_EVERY_HANDLER ANY_SLEEP_IN_WHILE TEXT_MATCH ORELSE_IN_LOOP "
            "ASYNC_FOR_NOT_LOOP WALK_ORDER WAIT_PREFIX SLEEP_SUBSTRING ONLY_IS_SET SET_ORDER KNOWN_SLEEPS "
            "STOPS_AT_NESTED_TRY FUNCTIONS_ONLY",
        )
    ],
    "08_week_in_production": [
        (
            answers_08,
            "fix",
            "FIXED OTHER_FIX ALT_IDIOMS POLLS_UNTIL_ENDED SHIELDED_CHILD SERIAL_BATCH TO_THREAD_SOCKET "
            "SIMPLE_QUEUES_BATCH",
            "THREE_OF_FOUR TASKS_ONLY DROPS_WORK MADE_UP_LOOKUP JOINS_BUT_DEAF DROPS_EVENT_ON_STOP STOP_NO_JOIN "
            "BATCH_NO_JOIN STOP_LOOKS_ONCE BATCH_LOOKS_ONCE FIXED_TIMEOUTS CHEAT_DEADLINE_TELLS STUB LEAKY "
            "CLOSES_ONLY_WHEN_ANSWERED CANCELS_ONLY_ON_TIMEOUT HIDES_REPORT_TASKS LAUNCHER_BATCH "
            "TO_THREAD_NO_SOCKET_TIMEOUT THREAD_PER_JOB DEFAULT_POOL",
        ),
        (
            answers_08,
            "diagnosis",
            "DIAGNOSIS DIAGNOSIS_QUALIFIED",
            "DIAGNOSIS_LIBRARY_FRAMES DIAGNOSIS_UNORDERED DIAGNOSIS_CALLERS DIAGNOSIS_WRONG_HOLDER DIAGNOSIS_STUB "
            "DIAGNOSIS_FROM_THE_GRADER",
        ),
    ],
}
