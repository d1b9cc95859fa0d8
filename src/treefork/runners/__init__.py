"""Step runners: the imperative shell that runs commands, agents and the Claude CLI.

:mod:`~treefork.runners.process` runs one command in its own process group;
:mod:`~treefork.runners.steps` runs a list of steps with their options (when, retry,
on_failure, capture, commit_required); :mod:`~treefork.runners.agent`,
:mod:`~treefork.runners.claude` and :mod:`~treefork.runners.files` run one step of each kind.
"""
