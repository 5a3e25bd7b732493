"""The same three example plugins (logger, guard, enricher) written in every supported guest language.

`python -m plugin_examples.build` (or `just plugins`) compiles them from source into
`build/plugins/<lang>/<example>.wasm`; see `plugin_examples/build.py`.
"""
