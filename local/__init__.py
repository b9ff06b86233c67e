"""The local stack: emulator and functions-framework helpers shared by the tests and ``make`` targets."""
