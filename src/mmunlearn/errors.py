"""One exception type for every user-facing input problem.

The CLI turns a :class:`InputError` into a single line on stderr and exit code 2, so every check in
the library raises it with a message that names the file, line, field or id at fault.
"""


class InputError(ValueError):
    """Bad user input: a file, field, id or option the user can fix."""
