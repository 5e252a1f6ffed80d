"""carousel's benchmarks: ``python -m benchmarks`` (``make bench``) times carousel against torch.nn.

See ``benchmarks/cases.py`` for what is compared and ``benchmarks/harness.py`` for how.
"""
