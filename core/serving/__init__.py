"""The hosted dashboard's server-side services, run for the pages so that a page never does heavy work in its script
run: the machine-wide job queue (``jobs``: shared jobs, the result cache, one job at a time, cancel; each job a
``python -m core.serving.jobs`` child process) and the Playground and Weights pages' helpers (``playground``: one input
through two variants, a layer's quantization error). The hosted-mode policy (``core.access.hosting``) and the sign-in identity
(``core.access.identity``) stay at core's top level: the storage and the model sources below this package ask them too.
"""
