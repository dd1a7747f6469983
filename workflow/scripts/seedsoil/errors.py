"""The one exception type users see: a bad input, named and explained."""


class InputError(ValueError):
    """A problem with something the user gave (file, column, row, value).

    The message names the offending file/column/row and says what to do.
    The command-line entry point and the rule scripts print it without a traceback.
    """
