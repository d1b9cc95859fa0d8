"""Workflow files: Prodigy's MapReduce format and treefork's own, loaded into domains.

::

    load_workflow("flow.yml")          read, validate (every problem at once), compile
      └─ parse_workflow(text, path=…)  the same on text, no I/O
           source.parse_yaml           YAML with the line:column of every key and value
           schema                      pydantic models: types, required and unknown keys
           checks                      expressions, env, max_parallel, steps, references
           compile                     -> Workflow(domains=(Domain, ...), merge=(Step, ...))

A file with ``domains`` is in treefork's format (``task``, ``budget``, ``max_parallel``
and one entry per domain); any other file is Prodigy's (``mode: mapreduce``) and becomes a
single domain named after its ``name``.
"""

from treefork.workflow.loader import load_workflow, parse_workflow, validate_workflow
from treefork.workflow.model import Workflow

__all__ = ("Workflow", "load_workflow", "parse_workflow", "validate_workflow")
