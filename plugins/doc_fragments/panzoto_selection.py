"""Documentation of the selection options (their spec: SELECTION_ARGUMENT_SPEC in module_utils/panzoto/selection.py).

Every module that selects jobs (processing_jobs_cleanup, processing_jobs_diagnose) takes these options with
the same names, types, defaults and meaning; a module may add to an option's description (its own default).
"""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  table:
    description: Name of the processing-jobs table.
    type: str
    default: panzoto-processing-jobs
  categories:
    description:
      - Select failed jobs in these error categories (see O(classification_rules)); C(deletable) stands for
        every category whose rule says cleanup may delete it. An unknown name is refused.
    type: list
    elements: str
    default: []
  statuses:
    description:
      - Select jobs in these statuses; C(pending) and C(processing) jobs only when stuck (created more than
        O(stuck_after) before O(now)). Alternatives to O(categories).
    type: list
    elements: str
    choices: [pending, processing, completed, failed]
    default: []
  older_than:
    description:
      - Narrow the selection to jobs created more than this long before O(now), e.g. C(7d), C(12h), C(90m).
      - The unit is required; a bare number is refused (read as seconds, C(30) would select nearly every job).
    type: str
  job_types:
    description: Narrow the selection to these job types.
    type: list
    elements: str
  user_ids:
    description:
      - Narrow the selection to these users' jobs, read with one C(Query) per user on O(user_index) when that
        index sees every job the run must see (it exists, is keyed by C(user_id), projects ALL and is active),
        else by a scan; the result's C(read) says which and why.
    type: list
    elements: str
  job_ids:
    description: Select these jobs; alone, whatever their status, with O(categories) or O(statuses) it narrows them.
    type: list
    elements: str
  user_index:
    description: GSI keyed by C(user_id) used with O(user_ids); empty to scan instead.
    type: str
    default: user-jobs-index
  stuck_after:
    description:
      - How long a pending or processing job may wait before it counts as stuck (C(90s), C(30m), C(1h), C(7d) or
        seconds).
    type: str
    default: 1h
  now:
    description: The reference time as ISO-8601, for reproducible selections. Defaults to the current time.
    type: str
  segments:
    description: Parallel scan segments.
    type: int
    default: 4
"""
