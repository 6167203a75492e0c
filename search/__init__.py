"""fbp-search's study system: the `fbp-search` command line (search.cli) and its Python API
(search.api), importable from here:

    from search import load_results, resume_study, run_study

The names load on first use, so importing a module of this package (the command line's
`--help`, a trial on a worker) does not import pandas for them.
"""

__all__ = ["BestTrial", "StudyPaths", "StudyResults", "StudyRun", "load_results", "resume_study", "run_study"]


def __getattr__(name: str):
    if name in __all__:
        from search import api

        return getattr(api, name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
