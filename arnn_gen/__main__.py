"""``python -m arnn_gen`` is the ``arnn-gen`` command line."""

from arnn_gen.cli import main

if __name__ == "__main__":
    main()
