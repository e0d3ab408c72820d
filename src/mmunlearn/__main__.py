"""``python -m mmunlearn`` is the same as the ``mmunlearn`` command."""

from mmunlearn.cli import main

main()
