"""`python -m plugin_examples` is the same as `python -m plugin_examples.build`."""

from plugin_examples.build import main

if __name__ == "__main__":
    raise SystemExit(main())
