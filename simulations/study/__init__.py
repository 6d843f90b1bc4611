"""Human labelling studies of invariance examples: design, storage, web app, results.

The paper's central measurements are human judgements (21%, 37%, 88% of its invariance
examples change the human label). This package turns any attack run
(:func:`invariance_tradeoffs.simulations.attacks.runs.load_run`) or published set
(:func:`simulations.data.published.load_published_examples`) into a labelling study,
serves it to participants, and reports their labels with the same statistics as the
published sets.

Modules, one per concept:

- :mod:`~simulations.study.design` -- which images, how many labels per image, who labels
  what in which (seeded) order, attention checks; :func:`create_study`.
- :mod:`~simulations.study.store` -- the SQLite study file (write-ahead log; the file *is*
  the study: images, plan, tokens (hashed) and every answer).
- :mod:`~simulations.study.app` -- the web application (Starlette, served by uvicorn).
- :mod:`~simulations.study.pages` -- the participant and admin pages (HTML, CSS, JS).
- :mod:`~simulations.study.results` -- counts matrix, majority labels, label-change rate,
  Fleiss' kappa, attention checks and the exclusion rule.
- :mod:`~simulations.study.exports` -- the authors' release format, CSV, Label Studio.
- :mod:`~simulations.study.client` -- a scripted participant and a server process (pilots,
  tests, benchmarks).
- :mod:`~simulations.cli.study` -- ``tradeoffs study create|serve|results|export|...``.

The web application and the statistics need the ``[study]`` extra
(``pip install "invariance-tradeoffs[study]"``); creating a study does not.
"""
