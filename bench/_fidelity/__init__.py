"""The steps of ``bench/fidelity.py``, one module each, in the order the run takes them.

``grid`` (the space, the settings, the baseline's place in the grid), ``training`` (the
runs into ``grid.csv``), ``loading`` (the grid read back; fidelity modes and rank
correlations), ``replay`` (a product search replaying the grid), ``verdicts`` (the
verdict at trial length against full length; the confirmation seeds on BEV) and
``report`` (the figures and the targets). ``fidelity.py`` holds the design and the
command line.
"""
