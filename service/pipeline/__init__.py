"""One readable function per job: ``execute.run_execution`` and ``generate.run_generation``.

Both follow the same path: open a job -> intake files -> (generate -> verify/modify) ->
policy -> run in an executor -> build the response. ``jobs`` holds the shared steps.
"""
