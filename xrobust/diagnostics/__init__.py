"""Read-outs of a job's model beyond accuracy (issue #32): cross-lingual alignment, certified accuracy under
embedding smoothing, accuracy under word substitution; hooks.py is the one place the job calls them from."""
